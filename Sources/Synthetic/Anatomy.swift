import Random
// The scene model: a subject-level anatomy (drawn once per subject from its own random stream)
// and a per-image pose (probe shift, tilt and pressure, gain, nerve presence and jitter, speckle
// seed). All geometry is in "reference pixels" of the 580 x 420 frame; the renderer scales it to
// the requested image size. Depth `y` grows downwards from the transducer at the top.

/// Reference frame size: geometry constants below are expressed in these pixels.
let referenceWidth = 580.0
let referenceHeight = 420.0

/// A smooth wavy curve `y(x)` (a tissue boundary or a fascia line).
struct WavyCurve: Sendable {
    var base: Double
    var tilt: Double
    var amp1: Double, freq1: Double, phase1: Double
    var amp2: Double, freq2: Double, phase2: Double

    func y(_ x: Double) -> Double {
        base + tilt * (x - referenceWidth / 2)
            + amp1 * PortableMath.sin(freq1 * x + phase1) + amp2 * PortableMath.sin(freq2 * x + phase2)
    }

    static func random(base: Double, amplitude: Double, tilt: Double, rng: inout SeededGenerator) -> WavyCurve {
        WavyCurve(
            base: base, tilt: rng.uniform(-tilt...tilt),
            amp1: amplitude * rng.uniform(0.4...1), freq1: 2 * .pi / rng.uniform(180...600),
            phase1: rng.uniform(0...(2 * .pi)),
            amp2: amplitude * rng.uniform(0.1...0.3), freq2: 2 * .pi / rng.uniform(50...140),
            phase2: rng.uniform(0...(2 * .pi)))
    }
}

/// A piecewise-linear positive profile along x (reference pixels), used to break fascia lines
/// into brighter and fainter stretches.
struct Profile: Sendable {
    static let start = -60.0, spacing = 40.0
    var knots: [Double]

    func value(at x: Double) -> Double {
        let t = min(max((x - Profile.start) / Profile.spacing, 0), Double(knots.count - 1) - 1e-9)
        let i = Int(t)
        let f = t - Double(i)
        return knots[i] * (1 - f) + knots[i + 1] * f
    }

    static func random(range: ClosedRange<Double>, rng: inout SeededGenerator) -> Profile {
        let n = Int((referenceWidth - 2 * start) / spacing) + 2
        return Profile(knots: (0..<n).map { _ in max(0, rng.uniform(range)) })
    }
}

/// A horizontal tissue layer between two boundaries.
struct Band: Sendable {
    enum Kind: Sendable { case fat, muscle }
    var kind: Kind
    /// Mean echogenicity (reflectivity before speckle, gain and log compression).
    var level: Double
    /// Relative amplitude of the smooth mottled texture.
    var mottle: Double
    /// Amplitude of the bright short streaks (perimysium in muscle, septa in fat).
    var streaks: Double
}

/// A thin bright wavy line (fascia, skin surface, reverberation).
struct Fascia: Sendable {
    var curve: WavyCurve
    var amplitude: Double
    var sigma: Double
    var profile: Profile
}

/// A fluid-filled vessel: anechoic lumen, bright wall, posterior acoustic enhancement.
/// Veins flatten under probe pressure (`compressibility` is the exponent of the pressure factor).
struct Vessel: Sendable {
    var cx: Double, cy: Double, rx: Double, ry: Double
    var lumen: Double, wall: Double, enhancement: Double, compressibility: Double
}

/// A hyperechoic bony arc (transverse process, rib) casting an acoustic shadow.
struct Bone: Sendable {
    var cx: Double, apex: Double, halfWidth: Double, curvature: Double
    var brightness: Double, thickness: Double, shadow: Double, shadowLength: Double

    func y(_ x: Double) -> Double { apex + curvature * (x - cx) * (x - cx) }
}

/// One harmonic of the nerve outline: radius factor 1 + amp cos(order phi + phase).
struct Harmonic: Sendable {
    let order: Int, amp: Double, phase: Double
    let cosPhase: Double, sinPhase: Double

    init(order: Int, amp: Double, phase: Double) {
        self.order = order
        self.amp = amp
        self.phase = phase
        (sinPhase, cosPhase) = PortableMath.sinCos(phase)
    }
}

/// A fascicle in nerve-normalised coordinates (the unit disk maps onto the nerve ellipse).
struct Fascicle: Sendable {
    var u: Double, v: Double, radius: Double
}

/// The nerve of a subject (present in some of its images only).
struct NerveAnatomy: Sendable {
    var cx: Double, cy: Double, area: Double, aspect: Double, angle: Double
    var harmonics: [Harmonic]
    var fascicles: [Fascicle]
    var rim: Double
    /// Phase of the low-discrepancy presence sequence (see `SubjectAnatomy.hasNerve(index:)`).
    var presencePhase: Double

    /// Semi-axes (reference pixels) for a given area factor.
    func axes(areaFactor: Double) -> (a: Double, b: Double) {
        let area = self.area * areaFactor
        return ((area * aspect / .pi).squareRoot(), (area / (.pi * aspect)).squareRoot())
    }
}

/// Everything that is fixed for one subject (one patient / scan session).
struct SubjectAnatomy: Sendable {
    /// Fraction of images that show the nerve.
    static let nervePresence = 0.4

    var boundaries: [WavyCurve]  // sorted by depth; band i lies above boundary i
    var bands: [Band]            // boundaries.count + 1
    var fascia: [Fascia]
    var vessels: [Vessel]
    var bone: Bone?
    var nerve: NerveAnatomy
    var gainDB: Double
    var attenuation: Double
    var tgc: Double
    var textureSeed: UInt64
    /// Width factor of the point-spread function (probe frequency and focus): speckle grain size.
    var resolution: Double

    /// Whether image `index` of this subject shows the nerve: a Weyl (golden-ratio) sequence with a
    /// random phase, so each subject shows the nerve in very nearly 40% of its images, in an
    /// irregular pattern, and the answer depends only on the subject and the index.
    func hasNerve(index: Int) -> Bool {
        let t = nerve.presencePhase + Double(index) * 0.618_033_988_749_894_9
        return t - t.rounded(.down) < SubjectAnatomy.nervePresence
    }

    init(rng: inout SeededGenerator) {
        // Nerve first: other structures are placed around it.
        let nerveArea = PortableMath.exp(rng.uniform(PortableMath.log(1_800)...PortableMath.log(7_000)))
        var nerve = NerveAnatomy(
            cx: rng.uniform(110...470), cy: rng.uniform(125...275), area: nerveArea,
            aspect: rng.uniform(1.15...1.8), angle: rng.uniform(-0.35...0.35),
            harmonics: [], fascicles: [], rim: rng.uniform(1.5...2.2), presencePhase: rng.nextDouble())
        nerve.harmonics = [(2, 0.05), (3, 0.035), (4, 0.02), (5, 0.012)].map { order, amp in
            Harmonic(order: order, amp: amp * rng.uniform(0.3...1), phase: rng.uniform(0...(2 * .pi)))
        }
        nerve.fascicles = SubjectAnatomy.placeFascicles(nerve: nerve, rng: &rng)
        self.nerve = nerve
        let (na, nb) = nerve.axes(areaFactor: 1.2)
        let nerveRadius = max(na, nb) * 1.12

        // Layers: skin, subcutaneous fat, then alternating muscle and fat planes to the bottom.
        var depths = [rng.uniform(8...13)]
        depths.append(depths[0] + rng.uniform(22...45))
        while let last = depths.last, last < referenceHeight + 10 { depths.append(last + rng.uniform(32...85)) }
        boundaries = depths.enumerated().map { i, d in
            WavyCurve.random(base: d, amplitude: i == 0 ? 1.0 : rng.uniform(4...14), tilt: i == 0 ? 0.01 : 0.1, rng: &rng)
        }
        var bands = [Band(kind: .fat, level: rng.uniform(0.7...0.9), mottle: 0.15, streaks: 0.1),
                     Band(kind: .fat, level: rng.uniform(0.45...0.65), mottle: 0.35, streaks: 0.35)]
        for _ in 1..<boundaries.count {
            if rng.bernoulli(0.55) {
                bands.append(Band(kind: .muscle, level: rng.uniform(0.2...0.35), mottle: 0.25,
                                  streaks: rng.uniform(0.4...0.8)))
            } else {
                bands.append(Band(kind: .fat, level: rng.uniform(0.6...1.0), mottle: 0.3,
                                  streaks: rng.uniform(0.2...0.4)))
            }
        }
        self.bands = bands

        // Fascia: skin surface with two faint reverberations, most layer boundaries, and a few free lines.
        var fascia: [Fascia] = []
        var skin = boundaries[0]
        skin.base *= 0.5
        fascia.append(Fascia(curve: skin, amplitude: rng.uniform(1.8...2.6), sigma: 1.5,
                             profile: .random(range: 0.8...1.1, rng: &rng)))
        for (k, factor) in [(2.0, 0.22), (3.0, 0.1)] {
            var echo = skin
            echo.base *= k
            fascia.append(Fascia(curve: echo, amplitude: factor, sigma: 1.5, profile: .random(range: 0.6...1.2, rng: &rng)))
        }
        for curve in boundaries.dropFirst() where rng.bernoulli(0.8) {
            fascia.append(Fascia(curve: curve, amplitude: rng.uniform(1.0...2.2), sigma: rng.uniform(1.0...1.8),
                                 profile: .random(range: -0.3...1.3, rng: &rng)))
        }
        for _ in 0..<rng.int(in: 2...4) {
            let curve = WavyCurve.random(base: rng.uniform(60...380), amplitude: rng.uniform(3...10), tilt: 0.12, rng: &rng)
            fascia.append(Fascia(curve: curve, amplitude: rng.uniform(0.6...1.4), sigma: rng.uniform(0.8...1.3),
                                 profile: .random(range: -1.0...1.2, rng: &rng)))
        }
        self.fascia = fascia

        // Vessels: an artery (round, incompressible) and a vein (oval, flattens under pressure),
        // each present in some subjects and kept clear of the nerve and of each other.
        var vessels: [Vessel] = []
        for isVein in [false, true] where rng.bernoulli(isVein ? 0.6 : 0.65) {
            let rx = isVein ? rng.uniform(20...38) : rng.uniform(22...38)
            let ry = isVein ? rx * rng.uniform(0.55...0.85) : rx * rng.uniform(0.9...1.0)
            for _ in 0..<20 {
                let v = Vessel(cx: rng.uniform(40...540), cy: rng.uniform(90...300), rx: rx, ry: ry,
                               lumen: rng.uniform(0.02...0.05), wall: rng.uniform(0.5...0.9),
                               enhancement: rng.uniform(0.25...0.5), compressibility: isVein ? 6 : 0)
                let dn = ((v.cx - nerve.cx) * (v.cx - nerve.cx) + (v.cy - nerve.cy) * (v.cy - nerve.cy)).squareRoot()
                let clear = dn > rx + nerveRadius + 30 && vessels.allSatisfy { o in
                    ((v.cx - o.cx) * (v.cx - o.cx) + (v.cy - o.cy) * (v.cy - o.cy)).squareRoot() > rx + o.rx + 20
                }
                if clear { vessels.append(v); break }
            }
        }
        self.vessels = vessels

        // Bone: a deep bright arc with an acoustic shadow, never above the nerve.
        if rng.bernoulli(0.75) {
            var bone = Bone(cx: rng.uniform(60...520), apex: rng.uniform(290...370), halfWidth: rng.uniform(50...130),
                            curvature: rng.uniform(0.0015...0.005), brightness: rng.uniform(3...5),
                            thickness: rng.uniform(2...3.2), shadow: rng.uniform(0.8...0.95),
                            shadowLength: rng.uniform(8...20))
            let overlaps = abs(bone.cx - nerve.cx) < bone.halfWidth + nerveRadius
            if overlaps { bone.apex = max(bone.apex, nerve.cy + nerveRadius + 40) }
            self.bone = bone.apex < referenceHeight - 25 ? bone : nil
        } else {
            self.bone = nil
        }

        gainDB = rng.uniform(-3...3)
        attenuation = rng.uniform(1.3...2.0)
        tgc = rng.uniform(0.2...0.6)
        textureSeed = rng.next()
        resolution = rng.uniform(0.85...1.15)
    }

    /// Non-overlapping fascicles inside the nerve (rejection sampling in the normalised disk).
    private static func placeFascicles(nerve: NerveAnatomy, rng: inout SeededGenerator) -> [Fascicle] {
        let (a, b) = nerve.axes(areaFactor: 1)
        let count = min(20, max(5, Int(nerve.area / 380)))
        let baseRadius = 0.55 * (nerve.area / (.pi * Double(count))).squareRoot()
        var result: [Fascicle] = []
        var tries = 0
        while result.count < count && tries < 600 {
            tries += 1
            let u = rng.uniform(-0.8...0.8), v = rng.uniform(-0.8...0.8)
            let radius = baseRadius * rng.uniform(0.7...1.2)
            let reach = 0.82 - radius / min(a, b)
            if u * u + v * v > reach * reach { continue }
            let free = result.allSatisfy { f in
                let du = (u - f.u) * a, dv = (v - f.v) * b
                return (du * du + dv * dv).squareRoot() > (radius + f.radius) * 1.3
            }
            if free { result.append(Fascicle(u: u, v: v, radius: radius)) }
        }
        return result
    }
}

/// The nerve as it appears in one image (reference pixels, image frame).
struct NerveShape: Sendable {
    var cx: Double, cy: Double, a: Double, b: Double, angle: Double
    var harmonics: [Harmonic]
    var fascicles: [Fascicle]
    var rim: Double
}

/// Per-image variation: probe position and pressure, gain, nerve presence and jitter, speckle.
struct ImagePose: Sendable {
    var dx: Double, dy: Double, pressure: Double, tilt: Double, gainDB: Double
    var nerve: NerveShape?
    var speckleSeed: UInt64

    /// Maps anatomy coordinates to image coordinates (reference pixels).
    func map(x: Double, y: Double) -> (x: Double, y: Double) {
        (x + dx, y * pressure + dy + tilt * (x - referenceWidth / 2))
    }

    init(anatomy: SubjectAnatomy, hasNerve: Bool, rng: inout SeededGenerator) {
        dx = rng.uniform(-10...10)
        dy = rng.uniform(-5...5)
        pressure = rng.uniform(0.95...1.04)
        tilt = rng.uniform(-0.012...0.012)
        gainDB = rng.uniform(-1.5...1.5)
        // Always draw the nerve jitter, so the stream layout does not depend on presence.
        let n = anatomy.nerve
        let jx = rng.uniform(-7...7), jy = rng.uniform(-5...5)
        let (a, b) = n.axes(areaFactor: rng.uniform(0.87...1.15))
        let angle = n.angle + rng.uniform(-0.1...0.1)
        let harmonics = n.harmonics.map { h in
            Harmonic(order: h.order, amp: h.amp * rng.uniform(0.8...1.2), phase: h.phase + rng.uniform(-0.3...0.3))
        }
        let fascicles = n.fascicles.map { f in
            Fascicle(u: f.u + rng.uniform(-0.03...0.03), v: f.v + rng.uniform(-0.03...0.03),
                     radius: f.radius * rng.uniform(0.9...1.1))
        }
        speckleSeed = rng.next()
        let centre = (n.cx + jx + dx, (n.cy + jy) * pressure + dy + tilt * (n.cx - referenceWidth / 2))
        nerve = hasNerve
            ? NerveShape(cx: centre.0, cy: centre.1, a: a, b: b * pressure.squareRoot(), angle: angle,
                         harmonics: harmonics, fascicles: fascicles, rim: n.rim)
            : nil
    }
}
