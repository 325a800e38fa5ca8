import CPNG

/// PNG reading through libpng's simplified API (`png_image_*`, which keeps libpng's
/// setjmp/longjmp inside libpng and reports errors in `png_image.message`).
public enum PNGRead {
    /// Images larger than this are refused before decoding (a damaged header), as TIFFs are.
    public static let maxPixels = TIFF.maxPixels

    /// Any colour type and bit depth as 8-bit RGB, row-major, 3 bytes a pixel (libpng converts:
    /// gray is copied to the three channels, a palette is looked up, 16 bits are reduced, an
    /// alpha channel is composited on black). A `DataError` naming `path` for a missing file,
    /// a file that is not a PNG, a damaged one, or one of more than `maxPixels` pixels.
    public static func rgb(_ path: String) throws -> (width: Int, height: Int, pixels: [UInt8]) {
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        defer { png_image_free(&png) }
        guard png_image_begin_read_from_file(&png, path) != 0 else {
            throw DataError(path, "cannot read as a PNG: \(message(of: png))")
        }
        let width = Int(png.width), height = Int(png.height)
        guard width > 0, height > 0, width <= maxPixels / height else {
            throw DataError(path, "PNG of \(width)x\(height) pixels: more than \(maxPixels) pixels (a damaged header?)")
        }
        png.format = png_uint_32(PNG_FORMAT_RGB)
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let ok = pixels.withUnsafeMutableBytes { bytes in
            png_image_finish_read(&png, nil, bytes.baseAddress, png_int_32(width * 3), nil)
        }
        guard ok != 0 else { throw DataError(path, "cannot decode the PNG: \(message(of: png))") }
        return (width, height, pixels)
    }

    /// A PNG as one luminance channel, as `TIFF.read` gives a TIFF: RGB (and a palette's
    /// colours) weighted as Pillow's `convert("L")` does, gray as it is (8 bits).
    public static func luminance(_ path: String) throws -> TIFFImage {
        let (width, height, rgb) = try rgb(path)
        var pixels = [UInt16](repeating: 0, count: width * height)
        for i in pixels.indices {
            pixels[i] = TIFF.luminance(UInt32(rgb[3 * i]), UInt32(rgb[3 * i + 1]), UInt32(rgb[3 * i + 2]))
        }
        return TIFFImage(width: width, height: height, bitsPerSample: 8, pixels: pixels)
    }

    /// libpng's message in a `png_image` (NUL-terminated within its 64 bytes).
    public static func message(of png: png_image) -> String {
        var png = png
        let text = withUnsafeBytes(of: &png.message) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        return text.isEmpty ? "libpng gave no reason" : text
    }
}
