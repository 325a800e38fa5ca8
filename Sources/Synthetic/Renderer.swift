import Random
// Renders a scene (subject anatomy + image pose) into an 8-bit B-mode-like image and its mask.
//
// reflectivity E(x, y)  = tissue bands (level x mottled texture + bright streaks)
//                         + fascia ridges + vessels + bone arc + nerve (replaces the tissue)
// blurred by the point-spread function (thin lines come out as smeared echoes)
// transmission T(x, y)  = acoustic shadow below the bone x posterior enhancement below vessels
// gain G(y) V(x)        = depth attenuation with partial TGC, darker lateral edges
// speckle S(x, y)       = |complex noise smoothed by the point-spread function|, 2 looks, mean 1
// pixel                 = log compression of (E T G V + noise floor) S to the display range

/// Scene renderer. Geometry is in reference pixels; `sx`, `sy` scale to the output size.
struct Renderer {
    let width: Int, height: Int
    let sx: Double, sy: Double

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        sx = Double(width) / referenceWidth
        sy = Double(height) / referenceHeight
    }

    /// Renders the image (and the nerve mask, all zero when the nerve is absent).
    func render(anatomy: SubjectAnatomy, pose: ImagePose) -> (image: [UInt8], mask: [UInt8]) {
        var reflectivity = tissue(anatomy: anatomy, pose: pose)
        var transmission = [Float](repeating: 1, count: width * height)
        addFascia(anatomy.fascia, pose: pose, into: &reflectivity)
        for vessel in anatomy.vessels { addVessel(vessel, pose: pose, into: &reflectivity, transmission: &transmission) }
        if let bone = anatomy.bone { addBone(bone, pose: pose, into: &reflectivity, transmission: &transmission) }
        var mask = [UInt8](repeating: 0, count: width * height)
        if let nerve = pose.nerve {
            addNerve(nerve, texture: nerveTexture(seed: pose.speckleSeed), into: &reflectivity, mask: &mask)
        }
        reflectivity = pointSpread(reflectivity, scale: 0.55 * anatomy.resolution, planeWidth: width, planeHeight: height)
        let speckle = self.speckle(seed: pose.speckleSeed, resolution: anatomy.resolution)
        let image = compress(anatomy: anatomy, pose: pose, reflectivity: reflectivity,
                             transmission: transmission, speckle: speckle)
        return (image, mask)
    }

    // MARK: Coordinates

    /// Reference coordinates of the centre of pixel column `x` / row `y`.
    @inline(__always) func refX(_ x: Int) -> Double { (Double(x) + 0.5) / sx }
    @inline(__always) func refY(_ y: Int) -> Double { (Double(y) + 0.5) / sy }
    /// Pixel rows (clamped) covering reference depths lo...hi.
    func rows(_ lo: Double, _ hi: Double) -> Range<Int> {
        let a = max(0, Int((lo * sy).rounded(.down))), b = min(height, Int((hi * sy).rounded(.up)) + 1)
        return a..<max(a, b)
    }
    func columns(_ lo: Double, _ hi: Double) -> Range<Int> {
        let a = max(0, Int((lo * sx).rounded(.down))), b = min(width, Int((hi * sx).rounded(.up)) + 1)
        return a..<max(a, b)
    }

    // MARK: Tissue bands

    /// Margin (reference pixels) of the subject texture canvas around the frame, for probe shifts.
    static let margin = 40

    /// Two subject-level texture planes on a canvas in anatomy coordinates: a mottled texture
    /// (half resolution: it is smooth) and laterally elongated streaks, both standardised.
    private func textures(seed: UInt64) -> (mottle: [Float], streaks: [Float], cw: Int, ch: Int) {
        let cw = Int(referenceWidth) + 2 * Renderer.margin, ch = Int(referenceHeight) + 2 * Renderer.margin
        var rng = SeededGenerator(seed: seed)
        var mottle = Renderer.whiteNoise(count: (cw / 2) * (ch / 2), rng: &rng)
        var streaks = Renderer.whiteNoise(count: cw * ch, rng: &rng)
        Filters.boxBlur3(&mottle, width: cw / 2, height: ch / 2, radiusX: 2, radiusY: 1)
        Filters.boxBlur3(&streaks, width: cw, height: ch, radiusX: 5, radiusY: 1)
        Filters.standardise(&mottle)
        Filters.standardise(&streaks)
        return (mottle, streaks, cw, ch)
    }

    private func tissue(anatomy: SubjectAnatomy, pose: ImagePose) -> [Float] {
        let (mottle, streaks, cw, ch) = textures(seed: anatomy.textureSeed)
        let bands = anatomy.bands
        let levels = bands.map { Float($0.level) }
        let mottles = bands.map { Float($0.mottle) }
        let streakAmps = bands.map { Float($0.streaks) }
        let nb = anatomy.boundaries.count
        var out = [Float](repeating: 0, count: width * height)
        var bounds = [Double](repeating: 0, count: nb)
        let m = Double(Renderer.margin)
        let invP = 1 / pose.pressure
        mottle.withUnsafeBufferPointer { mo in
        streaks.withUnsafeBufferPointer { st in
        out.withUnsafeMutableBufferPointer { e in
            @inline(__always) func value(_ band: Int, _ t: Int) -> Float {
                let s = st[t] - 1.0
                let tm = (t / cw / 2) * (cw / 2) + min(cw / 2 - 1, (t % cw) / 2)
                return levels[band] * (1 + mottles[band] * mo[tm]) + streakAmps[band] * (s > 0 ? s : 0)
            }
            for x in 0..<width {
                let ax = refX(x) - pose.dx
                let tiltY = pose.tilt * (ax - referenceWidth / 2)
                var previous = -Double.infinity
                for k in 0..<nb {  // image depths of the boundaries, kept ordered
                    let y = anatomy.boundaries[k].y(ax) * pose.pressure + pose.dy + tiltY
                    bounds[k] = max(y, previous + 2)
                    previous = bounds[k]
                }
                let cx = min(cw - 1, max(0, Int(ax + m)))
                var band = 0
                for y in 0..<height {
                    let ry = refY(y)
                    while band < nb && ry > bounds[band] { band += 1 }
                    let ay = (ry - pose.dy - tiltY) * invP
                    let t = min(ch - 1, max(0, Int(ay + m))) * cw + cx
                    var v = value(band, t)
                    // Soft (about 3 px) transitions across boundaries.
                    if band > 0, ry - bounds[band - 1] < 1.5 {
                        let w = Float(0.5 + (ry - bounds[band - 1]) / 3)
                        v = w * v + (1 - w) * value(band - 1, t)
                    } else if band < nb, bounds[band] - ry < 1.5 {
                        let w = Float(0.5 + (bounds[band] - ry) / 3)
                        v = w * v + (1 - w) * value(band + 1, t)
                    }
                    e[y * width + x] = max(0.02, v)
                }
            }
        }
        }
        }
        return out
    }

    // MARK: Fascia, vessels, bone

    private func addFascia(_ fascia: [Fascia], pose: ImagePose, into e: inout [Float]) {
        e.withUnsafeMutableBufferPointer { e in
            for f in fascia {
                for x in 0..<width {
                    let ax = refX(x) - pose.dx
                    let amp = f.amplitude * f.profile.value(at: ax)
                    if amp <= 0.005 { continue }
                    let yc = pose.map(x: ax, y: f.curve.y(ax)).y
                    let reach = 3 * f.sigma
                    for y in rows(yc - reach, yc + reach) {
                        let d = refY(y) - yc
                        e[y * width + x] += Float(amp * PortableMath.exp(-d * d / (2 * f.sigma * f.sigma)))
                    }
                }
            }
        }
    }

    private func addVessel(_ v: Vessel, pose: ImagePose, into e: inout [Float], transmission: inout [Float]) {
        let (cx, cy) = pose.map(x: v.cx, y: v.cy)
        let rx = v.rx
        let ry = max(2, v.ry * pose.pressure * Self.power(pose.pressure, v.compressibility))
        let rMean = (rx * ry).squareRoot()
        e.withUnsafeMutableBufferPointer { e in
        transmission.withUnsafeMutableBufferPointer { tr in
            for x in columns(cx - rx - 4, cx + rx + 4) {
                let u = (refX(x) - cx) / rx
                // Posterior enhancement below the lumen, proportional to the chord length.
                if abs(u) < 1 {
                    let chord = (1 - u * u).squareRoot()
                    let bottom = cy + ry * chord
                    for y in rows(bottom, referenceHeight) {
                        let onset = min(1, max(0, (refY(y) - bottom) / 8))
                        tr[y * width + x] *= Float(1 + v.enhancement * chord * onset)
                    }
                }
                for y in rows(cy - ry - 4, cy + ry + 4) {
                    let vv = (refY(y) - cy) / ry
                    let q = (u * u + vv * vv).squareRoot()
                    let dpx = (q - 1) * rMean  // signed distance to the wall, approximately
                    let inside = Float(min(1, max(0, 0.5 - dpx / 1.5)))
                    let specular = q > 0 ? 0.4 + 0.6 * abs(vv) / q : 1
                    let wall = v.wall * specular * PortableMath.exp(-dpx * dpx / (2 * 1.2 * 1.2))
                    let i = y * width + x
                    e[i] = e[i] * (1 - inside) + Float(v.lumen) * inside + Float(wall)
                }
            }
        }
        }
    }

    private func addBone(_ bone: Bone, pose: ImagePose, into e: inout [Float], transmission: inout [Float]) {
        e.withUnsafeMutableBufferPointer { e in
        transmission.withUnsafeMutableBufferPointer { tr in
            for x in 0..<width {
                let ax = refX(x) - pose.dx
                let edge = bone.halfWidth - abs(ax - bone.cx)
                if edge <= 0 { continue }
                let taper = Self.smoothstep(edge / 25)  // ends fade over 25 px
                let yc = pose.map(x: ax, y: bone.y(ax)).y
                let th = bone.thickness
                for y in rows(yc - 3 * th, yc + 3 * th) {
                    let d = refY(y) - yc
                    e[y * width + x] += Float(bone.brightness * taper * PortableMath.exp(-d * d / (2 * th * th)))
                }
                // Shadow: the column beneath darkens progressively with depth.
                for y in rows(yc, referenceHeight) {
                    let depth = max(0, refY(y) - yc)
                    let s = bone.shadow * taper * (1 - PortableMath.exp(-depth / bone.shadowLength))
                    tr[y * width + x] *= Float(1 - s)
                }
            }
        }
        }
    }

    // MARK: Nerve

    /// A small standardised texture for the nerve interior (fresh per image).
    private func nerveTexture(seed: UInt64) -> (values: [Float], size: Int) {
        let n = 160
        var rng = SeededGenerator(seed: seed, stream: 0x4E45_5256)  // "NERV"
        var t = Renderer.whiteNoise(count: n * n, rng: &rng)
        Filters.boxBlur3(&t, width: n, height: n, radiusX: 2, radiusY: 1)
        Filters.standardise(&t)
        return (t, n)
    }

    /// Polar description of a point relative to the nerve outline: `rn` < 1 inside, and the
    /// approximate signed distance `dpx` (reference pixels) to the outline along the ray.
    @inline(__always)
    static func nerveCoordinates(_ n: NerveShape, cosA: Double, sinA: Double, x: Double, y: Double)
        -> (rn: Double, c: Double, s: Double, lu: Double, lv: Double, dpx: Double)
    {
        let u = x - n.cx, v = y - n.cy
        let lu = cosA * u + sinA * v, lv = -sinA * u + cosA * v
        let pu = lu / n.a, pv = lv / n.b
        let q = (pu * pu + pv * pv).squareRoot()
        if q < 1e-9 { return (0, 1, 0, lu, lv, -min(n.a, n.b)) }
        let c = pu / q, s = pv / q
        // R(phi) = 1 + sum amp cos(k phi + phase), with cos(k phi), sin(k phi) by recurrence.
        var r = 1.0
        var ck = c, sk = s, k = 1
        for h in n.harmonics {
            while k < h.order { (ck, sk) = (ck * c - sk * s, sk * c + ck * s); k += 1 }
            r += h.amp * (ck * h.cosPhase - sk * h.sinPhase)
        }
        let rn = q / r
        let scale = r * ((n.a * c) * (n.a * c) + (n.b * s) * (n.b * s)).squareRoot()
        return (rn, c, s, lu, lv, (rn - 1) * scale)
    }

    /// Bounding box (reference pixels) that contains the nerve outline plus `pad`.
    static func nerveExtent(_ n: NerveShape, pad: Double) -> (x0: Double, x1: Double, y0: Double, y1: Double) {
        var grow = 1.0
        for h in n.harmonics { grow += abs(h.amp) }
        let r = max(n.a, n.b) * grow + pad
        return (n.cx - r, n.cx + r, n.cy - r, n.cy + r)
    }

    /// Rasterises the mask only (255 where the pixel centre is inside the outline).
    func nerveMask(_ n: NerveShape) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: width * height)
        let (sinA, cosA) = PortableMath.sinCos(n.angle)
        let box = Self.nerveExtent(n, pad: 1)
        mask.withUnsafeMutableBufferPointer { m in
            for y in rows(box.y0, box.y1) {
                for x in columns(box.x0, box.x1) {
                    if Self.nerveCoordinates(n, cosA: cosA, sinA: sinA, x: refX(x), y: refY(y)).rn < 1 {
                        m[y * width + x] = 255
                    }
                }
            }
        }
        return mask
    }

    private func addNerve(_ n: NerveShape, texture: (values: [Float], size: Int), into e: inout [Float],
                          mask: inout [UInt8]) {
        let (sinA, cosA) = PortableMath.sinCos(n.angle)
        let box = Self.nerveExtent(n, pad: 16)
        let fascicles = n.fascicles.map { (u: $0.u * n.a, v: $0.v * n.b, inv: 1 / $0.radius) }
        let ts = texture.size
        // The nerve is hypoechoic relative to its surroundings: scale its echoes by the mean
        // reflectivity of the tissue around it (4 to 14 px out), relative to a typical 0.55.
        var ringSum = 0.0, ringCount = 0.0
        for y in rows(box.y0, box.y1) {
            for x in columns(box.x0, box.x1) {
                let dpx = Self.nerveCoordinates(n, cosA: cosA, sinA: sinA, x: refX(x), y: refY(y)).dpx
                if dpx >= 4 && dpx <= 14 { ringSum += Double(e[y * width + x]); ringCount += 1 }
            }
        }
        let contrast = ringCount > 0 ? min(1.2, max(0.4, ringSum / ringCount / 0.55)) : 1
        e.withUnsafeMutableBufferPointer { e in
        mask.withUnsafeMutableBufferPointer { m in
        texture.values.withUnsafeBufferPointer { tex in
            for y in rows(box.y0, box.y1) {
                for x in columns(box.x0, box.x1) {
                    let p = Self.nerveCoordinates(n, cosA: cosA, sinA: sinA, x: refX(x), y: refY(y))
                    let dpx = p.dpx
                    if dpx > 16 { continue }
                    let i = y * width + x
                    if p.rn < 1 { m[i] = 255 }
                    // Perineural fat: a slightly brighter halo around the nerve.
                    var outside = Double(e[i])
                    if dpx > 0 { outside *= 1 + 0.5 * PortableMath.exp(-(dpx - 7) * (dpx - 7) / 40) }
                    let inside = min(1, max(0, 0.5 - dpx))
                    var value = outside * (1 - inside)
                    if inside > 0 {
                        // Interior: hypoechoic background, fascicles as dark spots with bright borders.
                        var dmin = Double.infinity
                        for f in fascicles {
                            let du = p.lu - f.u, dv = p.lv - f.v
                            dmin = min(dmin, (du * du + dv * dv).squareRoot() * f.inv)
                        }
                        let tx = min(ts - 1, max(0, Int(p.lu + Double(ts / 2))))
                        let ty = min(ts - 1, max(0, Int(p.lv + Double(ts / 2))))
                        var interior = 0.17 * (1 + 0.25 * Double(tex[ty * ts + tx]))
                        if dmin < 1 { interior = 0.04 + 0.08 * dmin * dmin }
                        let border = (dmin - 1.1) / 0.3
                        interior += 0.6 * PortableMath.exp(-border * border)
                        value += inside * interior * contrast
                    }
                    // Epineurium: bright rim just inside the outline, strongest at top and bottom.
                    let rd = dpx + 0.5
                    value += n.rim * (0.55 + 0.45 * abs(p.s)) * PortableMath.exp(-rd * rd / (2 * 1.5 * 1.5))
                    e[i] = Float(value)
                }
            }
        }
        }
        }
    }

    // MARK: Speckle and display

    /// Row kernels of the point-spread function (lateral width grows with depth, six depth zones),
    /// and its axial kernel; `scale` multiplies the widths. `rowOffset` shifts the depth zones
    /// for planes that start above the image (padded planes).
    private func psfKernels(scale: Double, rowOffset: Int = 0) -> (rows: [[Float]], column: [Float], rowKernel: (Int) -> Int) {
        let h = height
        let rows = (0..<6).map { Filters.gaussianKernel(sigma: scale * (2.4 + 1.4 * Double($0) / 5) * sx) }
        return (rows, Filters.gaussianKernel(sigma: scale * 1.3 * sy), { min(5, max(0, ($0 - rowOffset) * 6 / h)) })
    }

    /// Blurs a `planeWidth` x `planeHeight` plane by the point-spread function: the scanner cannot
    /// resolve details finer than its beam, so thin lines and fascicle borders come out as
    /// blurred, laterally smeared echoes.
    private func pointSpread(_ plane: [Float], scale: Double, planeWidth: Int, planeHeight: Int, rowOffset: Int = 0) -> [Float] {
        let psf = psfKernels(scale: scale, rowOffset: rowOffset)
        let rows = Filters.convolveRows(plane, width: planeWidth, height: planeHeight, kernels: psf.rows, kernelOfRow: psf.rowKernel)
        return Filters.convolveColumns(rows, width: planeWidth, height: planeHeight, kernel: psf.column)
    }

    /// Speckle: magnitude of complex white noise smoothed by an anisotropic Gaussian point-spread
    /// function (wider laterally, widening with depth), i.e. Rayleigh-distributed grains that are
    /// correlated and elongated laterally. `looks` independent realisations are compounded (their
    /// intensities averaged, as spatial compounding does on modern scanners), which removes the
    /// unnaturally black network of zero crossings of a single look; the result is normalised to
    /// mean 1. The white field is uniform rather than Gaussian: after smoothing over ~30 samples it
    /// is Gaussian to within a few percent in kurtosis (central limit), and much cheaper to draw.
    private func speckle(seed: UInt64, resolution: Double, looks: Int = 2) -> [Float] {
        var rng = SeededGenerator(seed: seed, stream: 0x5350_4B4C)  // "SPKL"
        let n = width * height
        let h = height
        // The noise is drawn on a padded plane and cropped after smoothing, so that the speckle
        // statistics are the same at the image edges (edge clamping would brighten them).
        let pad = psfKernels(scale: resolution).rows.map { $0.count / 2 }.max()! + 1
        let pw = width + 2 * pad, ph = height + 2 * pad
        var intensity = [Float](repeating: 0, count: n)
        var noise = [Float](repeating: 0, count: pw * ph)
        var rowsBlurred = noise, part = noise  // buffers reused for every plane
        let psf = psfKernels(scale: resolution, rowOffset: pad)
        for _ in 0..<(2 * looks) {  // real and imaginary parts of each look
            Renderer.whiteNoise(into: &noise, rng: &rng)
            Filters.convolveRows(noise, width: pw, height: ph, kernels: psf.rows, kernelOfRow: psf.rowKernel, into: &rowsBlurred)
            Filters.convolveColumns(rowsBlurred, width: pw, height: ph, kernel: psf.column, into: &part)
            part.withUnsafeBufferPointer { p in
                intensity.withUnsafeMutableBufferPointer { s in
                    for y in 0..<h {
                        let src = (y + pad) * pw + pad, dst = y * width
                        for x in 0..<width { s[dst + x] += p[src + x] * p[src + x] }
                    }
                }
            }
        }
        var total = 0.0
        intensity.withUnsafeMutableBufferPointer { s in
            for i in 0..<n { s[i] = s[i].squareRoot() }
            for y in 0..<h {  // row sums keep the Double accumulation cheap
                var rowSum: Float = 0
                for x in 0..<width { rowSum += s[y * width + x] }
                total += Double(rowSum)
            }
            let scale = Float(Double(n) / max(total, 1e-30))
            for i in 0..<n { s[i] *= scale }
        }
        return intensity
    }

    private func compress(anatomy: SubjectAnatomy, pose: ImagePose, reflectivity: [Float],
                          transmission: [Float], speckle: [Float]) -> [UInt8] {
        // Display: 0 at `lowDB`, 255 at `lowDB + dynamicRange` (decibels of the echo amplitude).
        let dynamicRange = 60.0
        let lowDB = -33.0 - anatomy.gainDB - pose.gainDB
        let floor: Float = 0.035  // electronic noise: keeps shadows and lumens grainy, not black
        let gains = (0..<height).map { y -> Float in
            let d = refY(y) / referenceHeight
            return Float(PortableMath.exp(-anatomy.attenuation * d) * (1 + anatomy.tgc * d))
        }
        let lateral = (0..<width).map { x -> Float in
            let edge = min(refX(x), referenceWidth - refX(x))
            return Float(0.75 + 0.25 * Self.smoothstep(edge / 30))
        }
        let dbPerLog = 20 / PortableMath.log(10)
        var out = [UInt8](repeating: 0, count: width * height)
        reflectivity.withUnsafeBufferPointer { e in
        transmission.withUnsafeBufferPointer { tr in
        speckle.withUnsafeBufferPointer { sp in
        out.withUnsafeMutableBufferPointer { o in
            for y in 0..<height {
                let g = gains[y]
                for x in 0..<width {
                    let i = y * width + x
                    let amplitude = (e[i] * tr[i] * g * lateral[x] + floor) * sp[i]
                    let db = dbPerLog * PortableMath.log(Double(max(amplitude, 1e-6)))
                    let level = 255 * (db - lowDB) / dynamicRange
                    o[i] = UInt8(min(255, max(0, level)) + 0.5)  // round half up
                }
            }
        }
        }
        }
        }
        return out
    }

    // MARK: Helpers

    /// Uniform white noise in [-1, 1), two values per 64-bit draw.
    static func whiteNoise(count: Int, rng: inout SeededGenerator) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        whiteNoise(into: &out, rng: &rng)
        return out
    }

    /// Fills `out` with uniform white noise in [-1, 1), two values per 64-bit draw.
    static func whiteNoise(into out: inout [Float], rng: inout SeededGenerator) {
        let count = out.count
        out.withUnsafeMutableBufferPointer { p in
            var i = 0
            while i < count {
                let bits = rng.next()
                p[i] = Float(bits >> 40) * 0x1.0p-23 - 1
                if i + 1 < count { p[i + 1] = Float((bits >> 8) & 0xFF_FFFF) * 0x1.0p-23 - 1 }
                i += 2
            }
        }
    }

    /// 0 below 0, 1 above 1, smooth in between.
    static func smoothstep(_ t: Double) -> Double {
        let c = min(1, max(0, t))
        return c * c * (3 - 2 * c)
    }

    /// x^k for x > 0 (portable).
    static func power(_ x: Double, _ k: Double) -> Double {
        k == 0 ? 1 : PortableMath.exp(k * PortableMath.log(x))
    }
}
