import Testing
import DataIO

/// The fixtures are written by Fixtures/make_tiff_fixtures.py with tifffile and Pillow; the formulas
/// here are the ones that script documents.
@Suite("TIFF through libtiff")
struct TIFFTests {
    static let width = 37, height = 23
    static func gray8(_ y: Int, _ x: Int) -> UInt16 { UInt16((7 * x + 13 * y) % 256) }
    static func gray16(_ y: Int, _ x: Int) -> UInt16 { UInt16((7 * x + 13 * y) * 97 % 65536) }
    static func rgbLuminance(_ y: Int, _ x: Int) -> UInt16 {
        let r = (7 * x + 13 * y) % 256, g = (3 * x + 5 * y + 50) % 256, b = (11 * x + 2 * y + 100) % 256
        return UInt16((19595 * r + 38470 * g + 7471 * b + 32768) >> 16)
    }
    static func expected(_ f: (Int, Int) -> UInt16) -> [UInt16] {
        (0..<height).flatMap { y in (0..<width).map { x in f(y, x) } }
    }
    static func fixture(_ name: String) -> String {
        fixturesDirectory.appendingPathComponent("tiff/\(name)").path
    }

    @Test(arguments: ["gray8.tif", "gray8_lzw.tif", "gray8_deflate.tif", "gray8_packbits.tif",
                      "gray8_tiled.tif", "gray8_strips.tif", "gray8_miniswhite.tif", "gray8_pillow.tif"])
    func eightBitGrayscale(name: String) throws {
        let image = try TIFF.read(Self.fixture(name))
        #expect(image.width == Self.width && image.height == Self.height && image.bitsPerSample == 8)
        #expect(image.pixels == Self.expected(Self.gray8))
        #expect(image.gray8() == Self.expected(Self.gray8).map { UInt8($0) })
    }

    @Test(arguments: ["gray16.tif", "gray16_tiled_deflate.tif"])
    func sixteenBitGrayscale(name: String) throws {
        let image = try TIFF.read(Self.fixture(name))
        #expect(image.bitsPerSample == 16)
        let expected = Self.expected(Self.gray16)
        #expect(image.pixels == expected)
        #expect(image.gray8() == expected.map { UInt8((UInt32($0) * 255 + 32767) / 65535) })
    }

    @Test(arguments: ["rgb8.tif", "rgb8_planar_lzw.tif", "rgb8_pillow_lzw.tif"])
    func rgbToLuminanceAsPillow(name: String) throws {
        let image = try TIFF.read(Self.fixture(name))
        #expect(image.bitsPerSample == 8)
        #expect(image.pixels == Self.expected(Self.rgbLuminance))
    }

    @Test(arguments: [TIFF.Compression.none, .lzw, .deflate, .packBits])
    func writeThenReadBack(compression: TIFF.Compression) throws {
        try withTemporaryDirectory { dir in
            let (w, h) = (580, 420)
            let pixels = (0..<(w * h)).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) }
            let path = dir + "/img.tif"
            try TIFF.writeGray8(pixels, width: w, height: h, to: path, compression: compression)
            let image = try TIFF.read(path)
            #expect(image.width == w && image.height == h)
            #expect(image.gray8() == pixels)
            #expect(listing(dir) == ["img.tif"])  // no temporary left
        }
    }

    @Test func notATIFF() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/x.tif"
            try writeBytes(Array("hello, not an image".utf8), path)
            let error = #expect(throws: DataError.self) { try TIFF.read(path) }
            #expect(error?.path == path)
            #expect(error?.problem.contains("not a readable TIFF") == true)
        }
    }

    @Test func emptyAndMissingFiles() throws {
        try withTemporaryDirectory { dir in
            try writeBytes([], dir + "/empty.tif")
            let empty = #expect(throws: DataError.self) { try TIFF.read(dir + "/empty.tif") }
            #expect(empty?.problem.contains("empty") == true)
            let missing = #expect(throws: DataError.self) { try TIFF.read(dir + "/missing.tif") }
            #expect(missing?.problem.contains("No such file") == true)
        }
    }

    @Test(arguments: [0.3, 0.6, 0.95])
    func truncatedFile(keep: Double) throws {
        try withTemporaryDirectory { dir in
            let pixels = [UInt8](repeating: 100, count: 580 * 420)
            let whole = dir + "/whole.tif"
            try TIFF.writeGray8(pixels, width: 580, height: 420, to: whole)
            let bytes = try readBytes(whole)
            let cut = dir + "/cut.tif"
            // libtiff writes the directory after the image data: a cut file has a header that
            // points past its end.
            try writeBytes(Array(bytes.prefix(Int(Double(bytes.count) * keep))), cut)
            #expect(throws: DataError.self) { try TIFF.read(cut) }
        }
    }

    @Test func truncatedImageDataWithIntactDirectory() throws {
        // tifffile writes the directory before the image data: cutting the tail leaves a valid
        // header that promises more bytes than the file has.
        try withTemporaryDirectory { dir in
            let bytes = try readBytes(Self.fixture("gray8.tif"))
            let cut = dir + "/cut.tif"
            try writeBytes(Array(bytes.prefix(bytes.count - 300)), cut)
            let error = #expect(throws: DataError.self) { try TIFF.read(cut) }
            #expect(error?.path == cut)
            #expect(error?.problem.contains("truncated") == true || error?.problem.contains("corrupt") == true)
        }
    }

    @Test func writeIntoMissingFolderFailsCleanly() throws {
        try withTemporaryDirectory { dir in
            let error = #expect(throws: DataError.self) {
                try TIFF.writeGray8([1, 2, 3, 4], width: 2, height: 2, to: dir + "/nope/x.tif")
            }
            #expect(error?.path == dir + "/nope/x.tif")
            #expect(listing(dir).isEmpty)
        }
    }
}
