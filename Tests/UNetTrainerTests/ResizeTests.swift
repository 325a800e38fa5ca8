import Testing
import DataIO

/// Our resizes against Pillow's (fixtures by Fixtures/make_resize_fixtures.py).
@Suite("Resize")
struct ResizeTests {
    static func load(_ name: String) throws -> NDArray<Float> {
        try NPY.load(fixturesDirectory.appendingPathComponent("resize/\(name).npy").path, as: Float.self)
    }

    func resize(_ source: NDArray<Float>, to h: Int, _ w: Int) -> [Float] {
        var out = [Float](repeating: 0, count: h * w)
        source.scalars.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { o in
            Resize.resize(s, count: 1, height: source.shape[0], width: source.shape[1], outHeight: h, outWidth: w, into: o)
        }}
        return out
    }

    @Test func areaAveragingIsExactOverlap() throws {
        let expected = try Self.load("area_7x9")
        let ours = resize(try Self.load("source"), to: 7, 9)
        for i in 0..<ours.count { #expect(abs(ours[i] - expected.scalars[i]) < 1e-3, "pixel \(i)") }
    }

    @Test func bilinearEnlargingMatchesPillow() throws {
        let expected = try Self.load("bilinear_50x70")
        let ours = resize(try Self.load("small"), to: 50, 70)
        for i in 0..<ours.count { #expect(abs(ours[i] - expected.scalars[i]) < 1e-3, "pixel \(i)") }
    }

    @Test func areaKeepsTheMeanAndConstants() {
        // 420x580 to 64x80, the training shrink: a constant stays constant, the mean is kept.
        let (h, w) = (420, 580)
        let image = (0..<(h * w)).map { UInt8(truncatingIfNeeded: ($0 * 7919) >> 3) }
        var out = [Float](repeating: 0, count: 64 * 80 * 2)
        let constant = [UInt8](repeating: 200, count: h * w)
        (image + constant).withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { o in
            Resize.resize(s, count: 2, height: h, width: w, outHeight: 64, outWidth: 80, scale: 0.5, into: o)
        }}
        let meanIn = image.reduce(0.0) { $0 + Double($1) } / Double(h * w)
        let meanOut = out[0..<(64 * 80)].reduce(0.0) { $0 + Double($1) } / Double(64 * 80)
        #expect(abs(meanIn * 0.5 - meanOut) < 1e-2)
        #expect(out[(64 * 80)...].allSatisfy { abs($0 - 100) < 1e-3 })
    }
}
