import CTIFF

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A decoded TIFF image reduced to one luminance channel.
public struct TIFFImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    /// 8 or 16: the range of `pixels` is 0...255 or 0...65535.
    public let bitsPerSample: Int
    /// Row-major luminance, `height * width` values.
    public let pixels: [UInt16]

    /// The pixels as 8-bit values: as they are for 8-bit files; 16-bit values are scaled by
    /// 255/65535 and rounded (so 65535 becomes 255 and the full range is kept).
    public func gray8() -> [UInt8] {
        if bitsPerSample == 8 { return pixels.map { UInt8(truncatingIfNeeded: $0) } }
        return pixels.map { UInt8((UInt32($0) * 255 + 32767) / 65535) }
    }

    /// The pixels of a mask as 8-bit values: as `gray8`, except that 16-bit values that all fit
    /// in 8 bits are kept as they are (label indices, 0 and 1), not scaled to nothing.
    public func maskValues() -> [UInt8] {
        if bitsPerSample == 16 && !pixels.contains(where: { $0 > 255 }) {
            return pixels.map { UInt8(truncatingIfNeeded: $0) }
        }
        return gray8()
    }
}

/// TIFF reading and writing through libtiff (never a hand-written decoder).
///
/// Reading handles what the data sets we meet contain: 8- and 16-bit unsigned samples; grayscale
/// (min-is-black or min-is-white, with or without an alpha sample) and RGB/RGBA, converted to
/// luminance with the ITU-R 601 weights exactly as Pillow's `convert("L")` does
/// (`(19595 R + 38470 G + 7471 B + 32768) >> 16`); strips or tiles, chunky or planar; any
/// compression libtiff decodes (none, LZW, Deflate, PackBits, ...). Only the first image of a
/// multi-page file is read. Every libtiff diagnostic is captured per file and turned into a
/// one-line `DataError`; nothing is printed by libtiff itself.
public enum TIFF {
    /// ITU-R 601 luminance of an RGB pixel (8 or 16 bits a sample) as Pillow's `convert("L")`
    /// computes it, in integers: the same weights for TIFF and PNG images.
    @inline(__always)
    static func luminance(_ r: UInt32, _ g: UInt32, _ b: UInt32) -> UInt16 {
        let red: UInt64 = 19595 * UInt64(r), green: UInt64 = 38470 * UInt64(g), blue: UInt64 = 7471 * UInt64(b)
        return UInt16((red + green + blue + 32768) >> 16)
    }

    /// Compression schemes for writing.
    public enum Compression: UInt16, Sendable {
        case none = 1, lzw = 5, packBits = 32773, deflate = 8
    }

    /// The largest single allocation libtiff may make for one file (damaged headers cannot make it
    /// allocate absurd memory).
    public static let maxSingleAllocation = 256 << 20
    /// The largest width or height accepted.
    public static let maxDimension = 1 << 16
    /// The most pixels an image may have (8192 x 8192; a Kaggle image has 243,600).
    public static let maxPixels = 1 << 26
    /// How much larger than the whole file a compressed image's decoded samples may claim to be.
    /// Deflate cannot expand more than 1032:1 and LZW about 1400:1; a header claiming more is
    /// damaged, and is refused before anything is allocated for it.
    public static let maxCompressionRatio = 1 << 12

    /// Reads the first image of the TIFF file at `path`.
    public static func read(_ path: String) throws -> TIFFImage {
        let file = try Handle(path: path, mode: "r")
        return try file.decode()
    }

    /// Writes an 8-bit grayscale (min-is-black) image, row-major `height * width` bytes.
    /// Written to a temporary name and renamed into place when complete.
    public static func writeGray8(
        _ pixels: [UInt8], width: Int, height: Int, to path: String, compression: Compression = .none
    ) throws {
        guard width > 0, height > 0, pixels.count == width * height else {
            throw DataError(path, "cannot write a \(width)x\(height) image from \(pixels.count) bytes")
        }
        try writeAtomically(path) { temporary in
            let file = try Handle(path: temporary, mode: "w", reportedPath: path)
            try file.writeGray8(pixels, width: width, height: height, compression: compression)
            try file.close()
        }
    }

    /// libtiff's version string.
    public static var libraryVersion: String {
        String(cString: TIFFGetVersion()).split(separator: "\n").first.map(String.init) ?? ""
    }
}

/// One open TIFF file with its own diagnostics (libtiff 4.5's per-handle error handlers), so files
/// can be decoded on several threads at once without their messages mixing.
private final class Handle {
    let path: String
    /// The name libtiff opened (a temporary name when writing).
    let openedPath: String
    private var tif: OpaquePointer?
    private let options: OpaquePointer
    /// The first error libtiff reported for this file.
    var firstError: String?
    /// The file's size in bytes (reading only).
    private(set) var fileSize = 0

    init(path: String, mode: String, reportedPath: String? = nil) throws {
        self.path = reportedPath ?? path
        openedPath = path
        if mode == "r" {
            var info = stat()
            if stat(path, &info) != 0 { throw DataError(self.path, "cannot open: \(systemErrorText())") }
            if (info.st_mode & S_IFMT) != S_IFREG { throw DataError(self.path, "not a regular file") }
            if info.st_size == 0 { throw DataError(self.path, "empty file, not a TIFF image") }
            fileSize = Int(info.st_size)
        }
        options = TIFFOpenOptionsAlloc()
        TIFFOpenOptionsSetMaxSingleMemAlloc(options, tmsize_t(TIFF.maxSingleAllocation))
        let context = Unmanaged.passUnretained(self).toOpaque()
        TIFFOpenOptionsSetErrorHandlerExtR(options, { _, context, module, format, arguments in
            guard let context, let format, let arguments else { return 1 }
            let handle = Unmanaged<Handle>.fromOpaque(context).takeUnretainedValue()
            if handle.firstError == nil {
                var buffer = [CChar](repeating: 0, count: 512)
                _ = vsnprintf(&buffer, buffer.count, format, arguments)
                var text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                // Some libtiff messages start with the file name, which the DataError gives already.
                for name in [handle.path, handle.openedPath] where text.hasPrefix(name + ": ") {
                    text = String(text.dropFirst(name.count + 2))
                }
                handle.firstError = text
            }
            return 1  // handled: libtiff prints nothing
        }, context)
        TIFFOpenOptionsSetWarningHandlerExtR(options, { _, _, _, _, _ in 1 }, nil)  // warnings ignored
        tif = TIFFOpenExt(path, mode, options)
        if tif == nil {
            // deinit frees `options`: every stored property is set, so it runs after this throw.
            throw DataError(self.path, mode == "r"
                ? "not a readable TIFF file (\(firstError ?? "libtiff could not open it"))"
                : "cannot create (\(firstError ?? systemErrorText()))")
        }
    }

    deinit {
        if let tif { TIFFClose(tif) }
        TIFFOpenOptionsFree(options)
    }

    func close() throws {
        guard let tif else { return }
        let flushed = TIFFFlush(tif)
        TIFFClose(tif)
        self.tif = nil
        if flushed == 0 || firstError != nil { throw failure("cannot write") }
    }

    private func failure(_ what: String) -> DataError {
        DataError(path, firstError.map { "\(what): \($0)" } ?? what)
    }

    private func u16(_ tag: Int32, default value: UInt16? = nil) throws -> UInt16 {
        var v: UInt16 = 0
        if ctiff_get_defaulted_u16(tif, UInt32(tag), &v) == 1 { return v }
        if let value { return value }
        throw failure("missing TIFF tag \(tag)")
    }

    private func u32(_ tag: Int32) throws -> UInt32 {
        var v: UInt32 = 0
        if ctiff_get_u32(tif, UInt32(tag), &v) == 1 { return v }
        throw failure("missing TIFF tag \(tag)")
    }

    // MARK: Decoding

    func decode() throws -> TIFFImage {
        let width = Int(try u32(TIFFTAG_IMAGEWIDTH))
        let height = Int(try u32(TIFFTAG_IMAGELENGTH))
        let bits = Int(try u16(TIFFTAG_BITSPERSAMPLE, default: 1))
        let samples = Int(try u16(TIFFTAG_SAMPLESPERPIXEL, default: 1))
        let format = try u16(TIFFTAG_SAMPLEFORMAT, default: UInt16(SAMPLEFORMAT_UINT))
        let planar = try u16(TIFFTAG_PLANARCONFIG, default: UInt16(PLANARCONFIG_CONTIG))
        var photometric: UInt16 = 0
        if ctiff_get_u16(tif, UInt32(TIFFTAG_PHOTOMETRIC), &photometric) != 1 {
            photometric = samples >= 3 ? UInt16(PHOTOMETRIC_RGB) : UInt16(PHOTOMETRIC_MINISBLACK)
        }

        guard width > 0, height > 0, width <= TIFF.maxDimension, height <= TIFF.maxDimension else {
            throw DataError(path, "unsupported image size \(width)x\(height)")
        }
        guard bits == 8 || bits == 16 else {
            throw DataError(path, "unsupported \(bits)-bit samples (8- and 16-bit images are read)")
        }
        guard format == UInt16(SAMPLEFORMAT_UINT) else {
            throw DataError(path, "unsupported sample format \(format) (unsigned integers are read)")
        }
        let isGray = photometric == UInt16(PHOTOMETRIC_MINISBLACK) || photometric == UInt16(PHOTOMETRIC_MINISWHITE)
        let isRGB = photometric == UInt16(PHOTOMETRIC_RGB)
        guard (isGray && (1...2).contains(samples)) || (isRGB && (3...4).contains(samples)) else {
            throw DataError(path, "unsupported photometric interpretation \(photometric) with \(samples) samples per pixel (grayscale and RGB are read)")
        }

        // Sizes are checked against a cap and against the file before anything is allocated: a
        // damaged header must not make the reader zero gigabytes before libtiff finds the data missing.
        let pixelCount = width * height
        guard pixelCount <= TIFF.maxPixels else {
            throw DataError(path, "image of \(width)x\(height) pixels is larger than the reader's limit of"
                + " \(TIFF.maxPixels) pixels (a damaged header?)")
        }
        let compression = try u16(TIFFTAG_COMPRESSION, default: UInt16(COMPRESSION_NONE))
        let sampleBytes = pixelCount * samples * (bits / 8)
        let ratio = compression == UInt16(COMPRESSION_NONE) ? 1 : TIFF.maxCompressionRatio
        guard sampleBytes <= fileSize * ratio else {
            let what = "image data of \(width)x\(height) pixels, \(samples) sample\(samples == 1 ? "" : "s") of \(bits) bits each,"
                + " needs \(sampleBytes) bytes"
            throw DataError(path, compression == UInt16(COMPRESSION_NONE)
                ? "\(what) but the file has only \(fileSize) (a damaged header or a truncated file)"
                : "\(what) decoded, implausible for compression \(compression) when the file has only \(fileSize) bytes"
                    + " (limit \(TIFF.maxCompressionRatio):1; a damaged header)")
        }

        // Decode every sample into a planar buffer: plane s holds sample s of every pixel.
        let planes = isRGB ? 3 : 1
        var planeData = [UInt16](repeating: 0, count: planes * pixelCount)
        let bytesPerSample = bits / 8
        let chunky = planar == UInt16(PLANARCONFIG_CONTIG)
        let stride = chunky ? samples : 1  // samples between neighbouring pixels in a decoded block

        try planeData.withUnsafeMutableBufferPointer { out in
            // Copies a decoded block (rows x cols pixels at x0, y0, row length `rowSamples`) of plane
            // `plane` (or all planes, when chunky) into `out`, clipped to the image.
            func scatter(_ block: UnsafeRawBufferPointer, x0: Int, y0: Int, cols: Int, rows: Int, plane: Int) {
                let rowSamples = cols * stride
                for r in 0..<rows where y0 + r < height {
                    for c in 0..<cols where x0 + c < width {
                        let pixel = (y0 + r) * width + x0 + c
                        for p in 0..<planes where chunky || p == plane {
                            let index = r * rowSamples + c * stride + (chunky ? p : 0)
                            let value: UInt16 = bytesPerSample == 1
                                ? UInt16(block.load(fromByteOffset: index, as: UInt8.self))
                                : block.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self)
                            out[p * pixelCount + pixel] = value
                        }
                    }
                }
            }

            let sampleGroups = chunky ? 1 : samples
            if TIFFIsTiled(tif) != 0 {
                let tileWidth = Int(try u32(TIFFTAG_TILEWIDTH))
                let tileHeight = Int(try u32(TIFFTAG_TILELENGTH))
                // Tiles overhang small images (they are multiples of 16), but not absurdly.
                guard tileWidth > 0, tileHeight > 0, tileWidth <= TIFF.maxDimension, tileHeight <= TIFF.maxDimension,
                      tileWidth * tileHeight <= max(4 * pixelCount, 1 << 20),
                      tileWidth * tileHeight * stride * bytesPerSample <= TIFF.maxSingleAllocation
                else {
                    throw DataError(path, "invalid tile size \(tileWidth)x\(tileHeight) for a \(width)x\(height) image")
                }
                let tileBytes = tileWidth * tileHeight * stride * bytesPerSample
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: tileBytes, alignment: 16)
                defer { buffer.deallocate() }
                for plane in 0..<min(sampleGroups, planes) {
                    for y in Swift.stride(from: 0, to: height, by: tileHeight) {
                        for x in Swift.stride(from: 0, to: width, by: tileWidth) {
                            let tile = TIFFComputeTile(tif, UInt32(x), UInt32(y), 0, UInt16(plane))
                            let n = TIFFReadEncodedTile(tif, tile, buffer.baseAddress, tmsize_t(tileBytes))
                            if n < 0 { throw failure("corrupt or truncated image data in tile \(tile)") }
                            scatter(UnsafeRawBufferPointer(buffer), x0: x, y0: y, cols: tileWidth, rows: tileHeight, plane: plane)
                        }
                    }
                }
            } else {
                var rowsPerStrip = UInt32(height)
                _ = ctiff_get_u32(tif, UInt32(TIFFTAG_ROWSPERSTRIP), &rowsPerStrip)
                let stripRows = max(1, min(Int(rowsPerStrip), height))
                let stripsPerPlane = (height + stripRows - 1) / stripRows
                let stripBytes = stripRows * width * stride * bytesPerSample
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stripBytes, alignment: 16)
                defer { buffer.deallocate() }
                for plane in 0..<min(sampleGroups, planes) {
                    for s in 0..<stripsPerPlane {
                        let strip = UInt32(plane * stripsPerPlane + s)
                        let rows = min(stripRows, height - s * stripRows)
                        let expected = rows * width * stride * bytesPerSample
                        let n = TIFFReadEncodedStrip(tif, strip, buffer.baseAddress, tmsize_t(expected))
                        if n < expected { throw failure("corrupt or truncated image data in strip \(strip)") }
                        scatter(UnsafeRawBufferPointer(buffer), x0: 0, y0: s * stripRows, cols: width, rows: rows, plane: plane)
                    }
                }
            }
        }
        if let error = firstError { throw DataError(path, "corrupt TIFF: \(error)") }

        // Reduce to luminance.
        let maxValue: UInt32 = bits == 8 ? 255 : 65535
        var pixels: [UInt16]
        if isRGB {
            pixels = [UInt16](repeating: 0, count: pixelCount)
            planeData.withUnsafeBufferPointer { p in
                for i in 0..<pixelCount {
                    pixels[i] = TIFF.luminance(UInt32(p[i]), UInt32(p[pixelCount + i]), UInt32(p[2 * pixelCount + i]))
                }
            }
        } else {
            pixels = planeData
            if photometric == UInt16(PHOTOMETRIC_MINISWHITE) {
                for i in 0..<pixelCount { pixels[i] = UInt16(maxValue - UInt32(pixels[i])) }
            }
        }
        return TIFFImage(width: width, height: height, bitsPerSample: bits, pixels: pixels)
    }

    // MARK: Encoding

    func writeGray8(_ pixels: [UInt8], width: Int, height: Int, compression: TIFF.Compression) throws {
        let rowsPerStrip = max(1, min(height, 8192 / width))
        let ok = ctiff_set_u32(tif, UInt32(TIFFTAG_IMAGEWIDTH), UInt32(width)) == 1
            && ctiff_set_u32(tif, UInt32(TIFFTAG_IMAGELENGTH), UInt32(height)) == 1
            && ctiff_set_u16(tif, UInt32(TIFFTAG_BITSPERSAMPLE), 8) == 1
            && ctiff_set_u16(tif, UInt32(TIFFTAG_SAMPLESPERPIXEL), 1) == 1
            && ctiff_set_u16(tif, UInt32(TIFFTAG_PHOTOMETRIC), UInt16(PHOTOMETRIC_MINISBLACK)) == 1
            && ctiff_set_u16(tif, UInt32(TIFFTAG_PLANARCONFIG), UInt16(PLANARCONFIG_CONTIG)) == 1
            && ctiff_set_u16(tif, UInt32(TIFFTAG_COMPRESSION), compression.rawValue) == 1
            && ctiff_set_u32(tif, UInt32(TIFFTAG_ROWSPERSTRIP), UInt32(rowsPerStrip)) == 1
        guard ok else { throw failure("cannot set TIFF tags") }
        var data = pixels
        try data.withUnsafeMutableBytes { bytes in
            var strip: UInt32 = 0
            for y in stride(from: 0, to: height, by: rowsPerStrip) {
                let rows = min(rowsPerStrip, height - y)
                let n = TIFFWriteEncodedStrip(tif, strip, bytes.baseAddress! + y * width, tmsize_t(rows * width))
                if n < 0 { throw failure("cannot write") }
                strip += 1
            }
        }
    }
}
