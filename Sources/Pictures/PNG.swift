import CPNG
import DataIO

/// One 8-bit sRGB colour.
public struct RGB: Sendable, Hashable, CustomStringConvertible {
    public var r: UInt8, g: UInt8, b: UInt8
    public init(_ r: UInt8, _ g: UInt8, _ b: UInt8) { (self.r, self.g, self.b) = (r, g, b) }
    /// A gray level as a colour (r = g = b).
    public init(gray: UInt8) { self.init(gray, gray, gray) }
    public var description: String { "(\(r), \(g), \(b))" }
}

/// An 8-bit RGB image: row-major, top row first, 3 bytes per pixel (r, g, b), no padding.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    /// - Precondition: `width`, `height` positive and `pixels.count == width * height * 3`.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0 && pixels.count == width * height * 3,
                     "RGBImage: \(pixels.count) bytes for \(width)x\(height) pixels")
        (self.width, self.height, self.pixels) = (width, height, pixels)
    }

    /// A grayscale image (row-major `width * height` levels) in colour: r = g = b = the level.
    public init(gray: UnsafeBufferPointer<UInt8>, width: Int, height: Int) {
        precondition(width > 0 && height > 0 && gray.count == width * height,
                     "RGBImage: \(gray.count) gray levels for \(width)x\(height) pixels")
        let pixels = [UInt8](unsafeUninitializedCapacity: gray.count * 3) { rgb, initialized in
            for i in 0..<gray.count {
                let v = gray[i]
                rgb[3 * i] = v
                rgb[3 * i + 1] = v
                rgb[3 * i + 2] = v
            }
            initialized = gray.count * 3
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    public init(gray: [UInt8], width: Int, height: Int) {
        self = gray.withUnsafeBufferPointer { RGBImage(gray: $0, width: width, height: height) }
    }

    /// The pixel in column `x`, row `y` (0 is the top row).
    public subscript(x x: Int, y y: Int) -> RGB {
        get {
            precondition(x >= 0 && x < width && y >= 0 && y < height)
            let i = 3 * (y * width + x)
            return RGB(pixels[i], pixels[i + 1], pixels[i + 2])
        }
        set {
            precondition(x >= 0 && x < width && y >= 0 && y < height)
            let i = 3 * (y * width + x)
            pixels[i] = newValue.r
            pixels[i + 1] = newValue.g
            pixels[i + 2] = newValue.b
        }
    }
}

/// PNG files through libpng's simplified API (`png_image_write_to_file`,
/// `png_image_write_to_memory`, `png_image_begin_read_from_file` + `png_image_finish_read`): libpng keeps its setjmp/longjmp
/// error handling inside its own frames and reports a failure in `png_image.message`, which
/// becomes a one-line `DataError` naming the file. libpng prints nothing itself.
public enum PNG {
    /// The most pixels `read` accepts (8192 x 8192, as the TIFF reader): a damaged or hostile
    /// header cannot make it allocate more.
    public static let maxPixels = TIFF.maxPixels

    /// The libpng the program runs with, e.g. `1.6.39`.
    public static var libraryVersion: String { String(cString: png_get_libpng_ver(nil)) }

    /// Writes `image` as an 8-bit RGB PNG (zlib's default compression), atomically: to a hidden
    /// temporary name in the same folder, flushed to disk, then renamed over `path`. A failure
    /// (a missing or read-only folder, a full disk) throws a `DataError` naming `path` and leaves
    /// neither `path` changed nor a temporary file behind.
    public static func write(_ image: RGBImage, to path: String) throws {
        // libpng takes the row stride as a png_int_32.
        guard image.width * 3 <= Int(Int32.max), image.height <= Int(Int32.max) else {
            throw DataError(path, "cannot write a PNG of \(image.width)x\(image.height) pixels: too large")
        }
        try writeAtomically(path) { temporary in
            var png = rgbDescription(image)
            defer { png_image_free(&png) }
            let ok = image.pixels.withUnsafeBytes { bytes in
                png_image_write_to_file(&png, temporary, 0, bytes.baseAddress, png_int_32(image.width * 3), nil)
            }
            guard ok != 0 else { throw DataError(path, "cannot write the PNG: \(PNGRead.message(of: png))") }
        }
    }

    /// libpng's simplified-API description of `image`: 8-bit RGB, its width and height.
    static func rgbDescription(_ image: RGBImage) -> png_image {
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        png.width = png_uint_32(image.width)
        png.height = png_uint_32(image.height)
        png.format = png_uint_32(PNG_FORMAT_RGB)
        return png
    }

    /// `image` as the bytes of an 8-bit RGB PNG (zlib's default compression), in memory
    /// (`png_image_write_to_memory`), e.g. for a `data:image/png;base64,` URI. A failure throws a
    /// `DataError` naming `name` (what the picture is called where it ends up).
    public static func encode(_ image: RGBImage, name: String) throws -> [UInt8] {
        guard image.width * 3 <= Int(Int32.max), image.height <= Int(Int32.max) else {
            throw DataError(name, "cannot encode a PNG of \(image.width)x\(image.height) pixels: too large")
        }
        // A first guess that fits what images compress to (a third of the raw pixels for an
        // ultrasound overlay); when it is too small (noise) libpng says how much it needs, and
        // the second attempt has exactly that.
        var capacity = image.pixels.count / 2 + 1024
        var retried = false
        while true {
            var png = rgbDescription(image)
            defer { png_image_free(&png) }
            var bytes = [UInt8](repeating: 0, count: capacity)
            var size = png_alloc_size_t(capacity)
            let ok = bytes.withUnsafeMutableBytes { memory in
                image.pixels.withUnsafeBytes { pixels in
                    png_image_write_to_memory(&png, memory.baseAddress, &size, 0, pixels.baseAddress,
                                              png_int_32(image.width * 3), nil)
                }
            }
            if ok != 0 {
                bytes.removeLast(capacity - Int(size))
                return bytes
            }
            // libpng raised `size` above the buffer's: only the buffer was too small.
            guard Int(size) > capacity, !retried else {
                throw DataError(name, "cannot encode the PNG: \(PNGRead.message(of: png))")
            }
            (capacity, retried) = (Int(size), true)
        }
    }

    /// Reads a PNG of any colour type and bit depth as 8-bit RGB (`DataIO.PNGRead.rgb`).
    public static func read(_ path: String) throws -> RGBImage {
        let (width, height, pixels) = try PNGRead.rgb(path)
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
