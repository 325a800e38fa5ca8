import Foundation
import Testing
@testable import Random
@testable import Synthetic

/// Tests of the synthetic ultrasound generator: the random generator, determinism, masks and nerve
/// statistics (from cheap scene descriptions), and realism checks on a few rendered images that a
/// "clean shapes" generator would fail. Rendering is slow in debug builds, so few images are drawn.
@Suite("Synthetic ultrasound")
struct SyntheticTests {
    static let dataset = try! SyntheticDataset(trainCount: 60, testCount: 30, subjects: 6, seed: 2024)

    /// Two training samples with a nerve, from different subjects, and their full-size renderings
    /// (shared by the realism tests; rendering takes about a second each in a debug build).
    static let picks: [(subject: Int, index: Int)] = {
        var picks: [(subject: Int, index: Int)] = []
        for (s, i) in dataset.trainSamples where dataset.trainScene(subject: s, index: i).pose.nerve != nil {
            if !picks.contains(where: { $0.subject == s }) { picks.append((s, i)) }
            if picks.count == 2 { break }
        }
        return picks
    }()
    static let rendered: [(image: [UInt8], mask: [UInt8])] = picks.map {
        dataset.trainImage(subject: $0.subject, index: $0.index)
    }
    /// The same dataset at a quarter of the size, for cheaper checks.
    static let small = try! SyntheticDataset(trainCount: 60, testCount: 30, subjects: 6, seed: 2024, width: 290, height: 210)

    // MARK: Random generator

    @Test func generatorIsDeterministicAndStreamsDiffer() {
        var a = SeededGenerator(seed: 1), b = SeededGenerator(seed: 1), c = SeededGenerator(seed: 2)
        let xa = (0..<8).map { _ in a.next() }, xb = (0..<8).map { _ in b.next() }, xc = (0..<8).map { _ in c.next() }
        #expect(xa == xb)
        #expect(xa != xc)
        var s1 = SeededGenerator(seed: 1, stream: 3, 4), s2 = SeededGenerator(seed: 1, stream: 4, 3)
        #expect(s1.next() != s2.next())
        // Pinned outputs: the stream must be identical on every platform and compiler version.
        var g = SeededGenerator(seed: 0)
        #expect([g.next(), g.next()] == [0x99EC_5F36_CB75_F2B4, 0xBF6E_1F78_4956_452A])
    }

    @Test func generatorDistributions() {
        var g = SeededGenerator(seed: 99)
        var sum = 0.0, sum2 = 0.0
        let n = 20_000
        for _ in 0..<n {
            let z = g.normal()
            sum += z
            sum2 += z * z
        }
        #expect(abs(sum / Double(n)) < 0.03)
        #expect(abs(sum2 / Double(n) - 1) < 0.05)
        for _ in 0..<1_000 {
            let u = g.nextDouble(), f = g.nextFloat(), k = g.int(in: -3...3)
            #expect(u >= 0 && u < 1 && f >= 0 && f < 1 && (-3...3).contains(k))
        }
    }

    @Test func portableMathMatchesLibm() {
        for i in 0..<2_000 {
            let x = Double(i) * 0.0137 - 13
            #expect(abs(PortableMath.exp(x) - Foundation.exp(x)) <= 1e-13 * Foundation.exp(x))
            #expect(abs(PortableMath.sin(x) - Foundation.sin(x)) < 1e-13)
            #expect(abs(PortableMath.cos(x) - Foundation.cos(x)) < 1e-13)
            let y = Double(i + 1) * 0.37
            #expect(abs(PortableMath.log(y) - Foundation.log(y)) < 1e-10)
        }
    }

    // MARK: Configuration

    @Test func invalidConfigurationsThrow() {
        #expect(throws: SyntheticConfigurationError.self) { try SyntheticDataset(trainCount: -1) }
        #expect(throws: SyntheticConfigurationError.self) { try SyntheticDataset(testCount: -1) }
        #expect(throws: SyntheticConfigurationError.self) { try SyntheticDataset(trainCount: 10, subjects: 0) }
        #expect(throws: SyntheticConfigurationError.self) { try SyntheticDataset(trainCount: 3, subjects: 4) }
        #expect(throws: SyntheticConfigurationError.self) { try SyntheticDataset(width: 10) }
        #expect(throws: SyntheticConfigurationError.self) { try SyntheticDataset(height: 5_000) }
        #expect(throws: Never.self) { try SyntheticDataset(trainCount: 0, testCount: 5, subjects: 0) }
    }

    @Test func trainSamplesSpreadOverSubjects() throws {
        let d = try SyntheticDataset(trainCount: 14, testCount: 0, subjects: 4, seed: 1)
        let samples = d.trainSamples
        #expect(samples.count == 14)
        let perSubject = (1...4).map { s in samples.filter { $0.subject == s }.map(\.index) }
        #expect(perSubject == [[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3], [1, 2, 3]])
        #expect(try SyntheticDataset(trainCount: 0, testCount: 3, subjects: 0).trainSamples.isEmpty)
    }

    // MARK: Determinism

    @Test func sameSeedSameBytesOtherSeedDifferentBytes() throws {
        let small = try SyntheticDataset(trainCount: 4, testCount: 2, subjects: 2, seed: 5, width: 145, height: 105)
        let again = try SyntheticDataset(trainCount: 4, testCount: 2, subjects: 2, seed: 5, width: 145, height: 105)
        let other = try SyntheticDataset(trainCount: 4, testCount: 2, subjects: 2, seed: 6, width: 145, height: 105)
        let a = small.trainImage(subject: 2, index: 1)
        #expect(a.image == again.trainImage(subject: 2, index: 1).image)
        #expect(a.mask == again.trainImage(subject: 2, index: 1).mask)
        #expect(a.image != other.trainImage(subject: 2, index: 1).image)
        #expect(small.testImage(id: 2) == again.testImage(id: 2))
        #expect(small.testImage(id: 2) != other.testImage(id: 2))
        // Pinned checksum: the bytes must not depend on the platform, compiler or build configuration
        // (FNV-1a of image 2_1). Update it deliberately when the image model changes.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in a.image { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
        #expect(hash == 8_331_119_416_246_565_850, "FNV-1a \(hash)")
    }

    @Test func generationOrderDoesNotMatter() throws {
        let d = try SyntheticDataset(trainCount: 6, testCount: 3, subjects: 2, seed: 11, width: 145, height: 105)
        let alone = d.trainImage(subject: 2, index: 3)
        let testAlone = d.testImage(id: 3)
        _ = d.trainImage(subject: 1, index: 1)
        _ = d.testImage(id: 1)
        _ = d.trainImage(subject: 2, index: 2)
        let after = d.trainImage(subject: 2, index: 3)
        #expect(alone.image == after.image && alone.mask == after.mask)
        #expect(testAlone == d.testImage(id: 3))
        // Generated concurrently, in whatever order the threads run: the same bytes.
        let samples = d.trainSamples
        let results = LockedArray(count: samples.count)
        DispatchQueue.concurrentPerform(iterations: samples.count) { k in
            results.set(k, d.trainImage(subject: samples[k].subject, index: samples[k].index).image)
        }
        let parallel = results.values
        #expect(parallel[5] == alone.image)  // sample 5 is 2_3
        #expect(parallel[0] == d.trainImage(subject: 1, index: 1).image)
    }

    // MARK: Masks and nerve statistics

    @Test func masksAreBinaryWithBoundedAreasAndAbout40PercentPresence() {
        let d = Self.dataset
        let renderer = Renderer(width: d.width, height: d.height)
        var withNerve = 0
        for (s, i) in d.trainSamples {
            guard let nerve = d.trainScene(subject: s, index: i).pose.nerve else { continue }
            withNerve += 1
            let mask = renderer.nerveMask(nerve)
            #expect(mask.allSatisfy { $0 == 0 || $0 == 255 })
            let area = mask.reduce(0) { $0 + ($1 == 255 ? 1 : 0) }
            #expect((1_000...10_000).contains(area), "area \(area) of \(s)_\(i)")
        }
        let fraction = Double(withNerve) / Double(d.trainSamples.count)
        #expect(fraction > 0.3 && fraction < 0.5, "nerve in \(withNerve) of \(d.trainSamples.count) images")
        let testWithNerve = (1...d.testCount).filter { d.testScene(id: $0).pose.nerve != nil }.count
        #expect(testWithNerve >= 8 && testWithNerve <= 16, "nerve in \(testWithNerve) of 30 test images")
    }

    @Test func renderedMasksMatchScenesAndEmptyMasksAreEmpty() {
        let d = Self.dataset
        let fullSize = Renderer(width: d.width, height: d.height)
        for (pick, r) in zip(Self.picks, Self.rendered) {
            #expect(r.image.count == d.width * d.height && r.mask.count == d.width * d.height)
            #expect(r.mask == fullSize.nerveMask(d.trainScene(subject: pick.subject, index: pick.index).pose.nerve!))
        }
        let small = Self.small
        let (s, i) = small.trainSamples.first { small.trainScene(subject: $0.subject, index: $0.index).pose.nerve == nil }!
        let empty = small.trainImage(subject: s, index: i)
        #expect(empty.mask.count == small.width * small.height && empty.mask.allSatisfy { $0 == 0 })
        #expect(Set(empty.image).count > 100)  // the anatomy is still there
        let test = small.testImage(id: 1)
        #expect(test.count == small.width * small.height && Set(test).count > 100)
        // At other sizes the anatomy is scaled, and the area bounds with it.
        let renderer = Renderer(width: small.width, height: small.height)
        for (s, i) in small.trainSamples {
            guard let nerve = small.trainScene(subject: s, index: i).pose.nerve else { continue }
            let area = renderer.nerveMask(nerve).reduce(0) { $0 + ($1 == 255 ? 1 : 0) }
            #expect(small.nerveAreaRange.contains(area), "area \(area) of \(s)_\(i) at 290 x 210")
        }
    }

    @Test func nerveCentroidsClusterWithinSubjects() {
        let d = Self.dataset
        let renderer = Renderer(width: d.width, height: d.height)
        var centroids: [(subject: Int, x: Double, y: Double)] = []
        for (s, i) in d.trainSamples {
            guard let nerve = d.trainScene(subject: s, index: i).pose.nerve else { continue }
            let mask = renderer.nerveMask(nerve)
            var sx = 0.0, sy = 0.0, n = 0.0
            for (k, v) in mask.enumerated() where v != 0 {
                sx += Double(k % d.width)
                sy += Double(k / d.width)
                n += 1
            }
            centroids.append((s, sx / n, sy / n))
        }
        var within = 0.0, withinCount = 0.0, between = 0.0, betweenCount = 0.0
        for a in 0..<centroids.count {
            for b in (a + 1)..<centroids.count {
                let p = centroids[a], q = centroids[b]
                let dist = ((p.x - q.x) * (p.x - q.x) + (p.y - q.y) * (p.y - q.y)).squareRoot()
                if p.subject == q.subject { within += dist; withinCount += 1 } else { between += dist; betweenCount += 1 }
            }
        }
        #expect(withinCount > 0 && betweenCount > 0)
        #expect(within / withinCount < 0.5 * between / betweenCount,
                "within \(within / withinCount), between \(between / betweenCount)")
    }

    // MARK: Realism

    @Test func speckleEverywhereNotPiecewiseConstant() {
        let w = Self.dataset.width, h = Self.dataset.height
        for r in Self.rendered {
            // Every 20 x 20 block has a grainy texture (a clean-shapes image has flat blocks).
            var minStd = Double.infinity
            for by in stride(from: 0, through: h - 20, by: 20) {
                for bx in stride(from: 0, through: w - 20, by: 20) {
                    var s1 = 0.0, s2 = 0.0
                    for y in by..<(by + 20) {
                        for x in bx..<(bx + 20) {
                            let v = Double(r.image[y * w + x])
                            s1 += v
                            s2 += v * v
                        }
                    }
                    minStd = min(minStd, (s2 / 400 - (s1 / 400) * (s1 / 400)).squareRoot())
                }
            }
            #expect(minStd > 5, "smoothest 20x20 block has standard deviation \(minStd)")
            let equalNeighbours = (0..<(w * h - 1)).filter { r.image[$0] == r.image[$0 + 1] }.count
            #expect(Double(equalNeighbours) / Double(w * h) < 0.2)
        }
    }

    @Test func nerveIsHypoechoicWithBrightRim() {
        let w = Self.dataset.width, h = Self.dataset.height
        for r in Self.rendered {
            let outside = chamferDistance(r.mask, width: w, height: h, from: 255)  // distance to the nerve
            let inside = chamferDistance(r.mask, width: w, height: h, from: 0)     // distance to the background
            var inner = Mean(), ring = Mean(), rim = Mean(), core = Mean()
            for k in 0..<(w * h) {
                let v = Double(r.image[k])
                if r.mask[k] != 0 {
                    inner.add(v)
                    if inside[k] <= 2 { rim.add(v) }
                    if inside[k] > 5 { core.add(v) }
                } else {
                    if outside[k] >= 4 && outside[k] <= 12 { ring.add(v) }
                    if outside[k] <= 1 { rim.add(v) }
                }
            }
            #expect(inner.value < ring.value - 3, "inside \(inner.value), ring around \(ring.value)")
            #expect(rim.value > core.value + 10, "rim \(rim.value), core \(core.value)")
        }
    }

    @Test func echoesFadeWithDepth() {
        let w = Self.dataset.width, h = Self.dataset.height
        var middle = Mean(), bottom = Mean()
        for r in Self.rendered {
            for y in (h / 4)..<(h / 2) { for x in 0..<w { middle.add(Double(r.image[y * w + x])) } }
            for y in (3 * h / 4)..<h { for x in 0..<w { bottom.add(Double(r.image[y * w + x])) } }
        }
        #expect(bottom.value < middle.value - 5, "bottom quarter \(bottom.value), second quarter \(middle.value)")
    }

    @Test func boneCastsShadow() {
        let d = Self.small  // half size: reference coordinates are scaled by 0.5
        let w = d.width, h = d.height
        // First subject with a bone: the columns under its apex are darker below it than beside it.
        guard let subject = (1...d.subjects).first(where: { d.trainAnatomy(subject: $0).bone != nil }) else {
            Issue.record("no subject with a bone")
            return
        }
        let (anatomy, pose) = d.trainScene(subject: subject, index: 1)
        let bone = anatomy.bone!
        let image = d.trainImage(subject: subject, index: 1).image
        let apex = pose.map(x: bone.cx, y: bone.apex)
        let y0 = min(h - 2, Int(apex.y * 0.5) + 12)
        var under = Mean(), beside = Mean()
        for y in y0..<h {
            for x in 0..<w {
                let dx = abs(Double(x) + 0.5 - apex.x * 0.5) * 2  // reference pixels
                if dx < bone.halfWidth * 0.4 { under.add(Double(image[y * w + x])) }
                if dx > bone.halfWidth + 30 { beside.add(Double(image[y * w + x])) }
            }
        }
        #expect(under.value < beside.value - 15, "under the bone \(under.value), beside \(beside.value)")
    }

    // MARK: Preview (development only)

    /// Writes a few images and masks as PGM files when `SYNTH_PREVIEW_DIR` is set; turn them into
    /// a PNG contact sheet with `Fixtures/preview_synth.py`.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SYNTH_PREVIEW_DIR"] != nil))
    func writePreview() throws {
        let dir = ProcessInfo.processInfo.environment["SYNTH_PREVIEW_DIR"]!
        let d = try SyntheticDataset(trainCount: 9, testCount: 3, subjects: 3, seed: 42)
        func write(_ bytes: [UInt8], _ name: String) throws {
            var data = Data("P5\n\(d.width) \(d.height)\n255\n".utf8)
            data.append(contentsOf: bytes)
            try data.write(to: URL(fileURLWithPath: dir).appendingPathComponent(name))
        }
        for (s, i) in d.trainSamples {
            let (image, mask) = d.trainImage(subject: s, index: i)
            try write(image, "\(s)_\(i).pgm")
            try write(mask, "\(s)_\(i)_mask.pgm")
        }
        for id in 1...d.testCount { try write(d.testImage(id: id), "test_\(id).pgm") }
    }
}

/// Results written from several threads.
private final class LockedArray: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [[UInt8]?]
    init(count: Int) { storage = Array(repeating: nil, count: count) }
    func set(_ index: Int, _ value: [UInt8]) { lock.withLock { storage[index] = value } }
    var values: [[UInt8]?] { lock.withLock { storage } }
}

/// A running mean.
private struct Mean {
    var sum = 0.0, count = 0.0
    mutating func add(_ v: Double) { sum += v; count += 1 }
    var value: Double { count > 0 ? sum / count : .nan }
}

/// Approximate Euclidean distance in pixels (3-4 chamfer) from every pixel to the nearest pixel whose
/// mask value is `source` (those pixels get 0).
private func chamferDistance(_ mask: [UInt8], width w: Int, height h: Int, from source: UInt8) -> [Double] {
    let big = Int.max / 4
    var d = mask.map { $0 == source ? 0 : big }
    for y in 0..<h {
        for x in 0..<w {
            var v = d[y * w + x]
            if x > 0 { v = min(v, d[y * w + x - 1] + 3) }
            if y > 0 {
                v = min(v, d[(y - 1) * w + x] + 3)
                if x > 0 { v = min(v, d[(y - 1) * w + x - 1] + 4) }
                if x < w - 1 { v = min(v, d[(y - 1) * w + x + 1] + 4) }
            }
            d[y * w + x] = v
        }
    }
    for y in stride(from: h - 1, through: 0, by: -1) {
        for x in stride(from: w - 1, through: 0, by: -1) {
            var v = d[y * w + x]
            if x < w - 1 { v = min(v, d[y * w + x + 1] + 3) }
            if y < h - 1 {
                v = min(v, d[(y + 1) * w + x] + 3)
                if x > 0 { v = min(v, d[(y + 1) * w + x - 1] + 4) }
                if x < w - 1 { v = min(v, d[(y + 1) * w + x + 1] + 4) }
            }
            d[y * w + x] = v
        }
    }
    return d.map { Double($0) / 3 }
}
