#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The codec copies little-endian file bytes straight into Swift arrays (and back), which is only
// correct on a little-endian host (x86_64, arm64: every platform this package targets).
#if _endian(big)
#error("The NPY codec assumes a little-endian host.")
#endif

// MARK: - Element types

/// The element types of a .npy file this codec reads and writes, named by NumPy's `descr` string
/// as NumPy writes it.
public enum NPYDType: String, Sendable, CaseIterable, CustomStringConvertible {
    case uint8 = "|u1"
    case int32 = "<i4"
    case float32 = "<f4"
    case float64 = "<f8"
    case int64 = "<i8"

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .uint8: 1
        case .int32, .float32: 4
        case .float64, .int64: 8
        }
    }

    /// The `descr` string, e.g. `<f4`.
    public var description: String { rawValue }

    /// The element type of a header's `descr` string, or nil when this codec does not support it.
    ///
    /// Accepts the spelling NumPy writes (`|u1`, `<i4`, ...) and the equivalent ones NumPy also
    /// reads as the same type: any byte order for the single-byte `u1`, and native order (`=` or
    /// no prefix) for the wider types, since the host is little-endian. Big-endian (`>f4`) and
    /// every other kind (bool, complex, strings, objects, structured) are unsupported.
    public init?(descr: String) {
        if let exact = NPYDType(rawValue: descr) {
            self = exact
            return
        }
        var body = Substring(descr)
        let order = body.first.flatMap { "<>|=".contains($0) ? $0 : nil }
        if order != nil { body = body.dropFirst() }
        switch (order, body) {
        case (_, "u1"): self = .uint8
        case (nil, "i4"), ("=", "i4"): self = .int32
        case (nil, "f4"), ("=", "f4"): self = .float32
        case (nil, "f8"), ("=", "f8"): self = .float64
        case (nil, "i8"), ("=", "i8"): self = .int64
        default: return nil
        }
    }
}

/// A Swift type stored as one `NPYDType`: its in-memory bytes are the file's bytes.
public protocol NPYScalar: BitwiseCopyable, Sendable, Equatable {
    /// The `descr` this type is read from and written as.
    static var npyDType: NPYDType { get }
}

extension UInt8: NPYScalar { public static var npyDType: NPYDType { .uint8 } }
extension Int32: NPYScalar { public static var npyDType: NPYDType { .int32 } }
extension Float: NPYScalar { public static var npyDType: NPYDType { .float32 } }
extension Double: NPYScalar { public static var npyDType: NPYDType { .float64 } }
extension Int64: NPYScalar { public static var npyDType: NPYDType { .int64 } }

// MARK: - Arrays, versions, headers

/// A dense n-dimensional array in C (row-major) order: `scalars.count` is the product of `shape`
/// (1 for a 0-d array, whose shape is `[]`).
public struct NDArray<Element: NPYScalar>: Sendable, Equatable {
    /// Extent of each axis, outermost first.
    public var shape: [Int]
    /// The elements, last axis varying fastest.
    public var scalars: [Element]

    /// An array of the given shape and elements; `save` checks that they agree.
    public init(shape: [Int], scalars: [Element]) {
        self.shape = shape
        self.scalars = scalars
    }

    /// Number of axes.
    public var rank: Int { shape.count }

    /// The number of elements of `shape`, or nil when an extent is negative or the product
    /// overflows `Int`.
    public static func elementCount(of shape: [Int]) -> Int? {
        var count = 1
        for extent in shape {
            guard extent >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: extent)
            if overflow { return nil }
            count = product
        }
        return count
    }
}

/// A .npy format version. 1.0 stores the header length in 2 bytes; 2.0 in 4 bytes; 3.0 is 2.0
/// with a UTF-8 (instead of latin-1) header.
public enum NPYVersion: Sendable, CaseIterable, CustomStringConvertible {
    case v1_0, v2_0, v3_0

    /// The major version number (byte 6 of the file).
    public var major: UInt8 {
        switch self {
        case .v1_0: 1
        case .v2_0: 2
        case .v3_0: 3
        }
    }

    /// The minor version number (byte 7 of the file): 0 for every supported version.
    public var minor: UInt8 { 0 }

    /// `"1.0"`, `"2.0"` or `"3.0"`.
    public var description: String { "\(major).\(minor)" }

    /// The version of a file's magic bytes 6 and 7, or nil if unsupported.
    public init?(major: UInt8, minor: UInt8) {
        guard let version = Self.allCases.first(where: { $0.major == major && $0.minor == minor })
        else { return nil }
        self = version
    }

    /// Bytes before the header dict: magic (6), version (2), header length (2 or 4).
    var prefixLength: Int { self == .v1_0 ? 10 : 12 }

    /// The largest header dict (with padding and newline) the length field can describe.
    var maxDictLength: Int { self == .v1_0 ? Int(UInt16.max) : Int(UInt32.max) }
}

/// What a .npy header says, after validation against the file's size.
public struct NPYHeader: Sendable, Equatable {
    /// The format version of the file.
    public var version: NPYVersion
    /// The element type (`descr`).
    public var dtype: NPYDType
    /// C-order shape (`[]` for a 0-d array).
    public var shape: [Int]
    /// Bytes before the data: magic, version, length field and the padded header dict.
    public var headerLength: Int

    /// Number of elements: the product of `shape`.
    public var elementCount: Int { NDArray<UInt8>.elementCount(of: shape) ?? 0 }

    /// Bytes of data after the header.
    public var dataLength: Int { elementCount * dtype.itemSize }
}

// MARK: - Reading and writing

/// Reads and writes NumPy .npy files (format versions 1.0, 2.0 and 3.0, C order, the element
/// types of `NPYDType`). Every failure is a `DataError` naming the file.
public enum NPY {
    /// Reads and validates the header of a .npy file without reading its data: magic string,
    /// version, header dict, and that the file holds exactly the bytes the shape needs.
    public static func readHeader(_ path: String) throws -> NPYHeader {
        try withOpenFile(path) { file in try file.readHeader() }
    }

    /// Reads a .npy file whose dtype is exactly `T.npyDType`.
    ///
    /// The data is read straight into the returned array's storage (no intermediate copy), after
    /// the header's shape was checked against the file size.
    public static func load<T: NPYScalar>(_ path: String, as type: T.Type = T.self) throws -> NDArray<T> {
        try withOpenFile(path) { file in
            let header = try file.readHeader()
            guard header.dtype == T.npyDType else {
                throw DataError(path, "dtype \(header.dtype) does not match the requested \(T.npyDType)"
                    + " (\(T.self))")
            }
            return NDArray(shape: header.shape, scalars: try file.readData(header))
        }
    }

    /// Reads a stack of 8-bit grayscale images: dtype `|u1`, shape (N, H, W), or (N, 1, H, W) as
    /// the Keras tutorial saved them, which is returned as (N, H, W) (the same bytes).
    public static func loadImageStack(_ path: String) throws -> NDArray<UInt8> {
        try withOpenFile(path) { file in
            let header = try file.readHeader()
            return NDArray(shape: try imageStackShape(header, path), scalars: try file.readData(header))
        }
    }

    /// The same stack read `chunk` images at a time into one buffer, reused: `body(first,
    /// images)` gets images `first..<first + n` (n = chunk, or what is left), (n, H, W) bytes.
    /// Returns the stack's shape (N, H, W). Memory: one chunk, whatever the file's size.
    @discardableResult
    public static func forEachImageChunk(_ path: String, chunk: Int,
                                         _ body: (_ first: Int, _ images: UnsafeBufferPointer<UInt8>) throws -> Void)
        throws -> [Int] {
        precondition(chunk >= 1)
        return try withOpenFile(path) { file in
            let header = try file.readHeader()
            let shape = try imageStackShape(header, path)
            let plane = shape[1] * shape[2]
            let buffer = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: min(chunk, max(shape[0], 1)) * plane)
            defer { buffer.deallocate() }
            var first = 0
            while first < shape[0] {
                let n = min(chunk, shape[0] - first)
                let part = UnsafeMutableBufferPointer(rebasing: buffer[0..<(n * plane)])
                try file.readDataChunk(into: UnsafeMutableRawBufferPointer(part), of: header)
                try body(first, UnsafeBufferPointer(part))
                first += n
            }
            return shape
        }
    }

    /// (N, H, W) of a uint8 image stack's header: (N, H, W) as it is, (N, 1, H, W) as the Keras
    /// tutorial saved them.
    public static func imageStackShape(_ header: NPYHeader, _ path: String) throws -> [Int] {
        let shape = header.shape
        guard header.dtype == .uint8 else {
            throw DataError(path, "expected a uint8 (|u1) image stack, found dtype \(header.dtype)")
        }
        if shape.count == 3 { return shape }
        if shape.count == 4 && shape[1] == 1 { return [shape[0], shape[2], shape[3]] }
        throw DataError(path, "expected an image stack of shape (N, H, W) or (N, 1, H, W),"
            + " found shape \(pythonTuple(shape))")
    }

    /// Writes `array` as a .npy file, byte for byte as NumPy 2.4's `np.save` (for `version: nil`)
    /// or `numpy.lib.format.write_array(f, a, version=...)` writes it.
    ///
    /// The file is written under a temporary name and renamed into place when complete
    /// (`writeAtomically`), so a failure leaves neither `path` nor a temporary file behind.
    /// - Parameter version: nil chooses as NumPy does: 1.0, or 2.0 if the header does not fit.
    public static func save<T: NPYScalar>(
        _ array: NDArray<T>, to path: String, version: NPYVersion? = nil
    ) throws {
        let shapeText = pythonTuple(array.shape)
        guard let count = NDArray<T>.elementCount(of: array.shape),
              !count.multipliedReportingOverflow(by: T.npyDType.itemSize).overflow
        else {
            throw DataError(path, "cannot save: invalid shape \(shapeText)")
        }
        guard count == array.scalars.count else {
            throw DataError(path, "cannot save: shape \(shapeText) needs \(count) elements,"
                + " the array has \(array.scalars.count)")
        }
        guard let header = encodeHeader(dtype: T.npyDType, shape: array.shape, version: version) else {
            throw DataError(path, "cannot save: the header for shape \(shapeText) does not fit"
                + " format \(version ?? .v1_0); use version 2.0")
        }
        try writeAtomically(path) { temporary in
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
            guard fd >= 0 else {
                throw DataError(path, "cannot create temporary file \(temporary): \(systemErrorText())")
            }
            var isOpen = true
            defer { if isOpen { close(fd) } }
            try header.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            try array.scalars.withUnsafeBytes { try writeAll(fd, $0, path: path) }
            isOpen = false
            if close(fd) != 0 {
                throw DataError(path, "write error: \(systemErrorText())")
            }
        }
    }

    /// The header bytes NumPy writes before the data of an array of `dtype` and `shape`: magic,
    /// version, length field, then the dict `{'descr': '<f4', 'fortran_order': False, 'shape':
    /// (3, 4), }`, NumPy's spare spaces for growing the first axis in place, and space padding
    /// so that the data starts at a multiple of 64 bytes, ending with a newline.
    ///
    /// - Parameter version: nil chooses as NumPy does (1.0 unless the header is too long for its
    ///   2-byte length field, then 2.0).
    /// - Returns: nil when the header does not fit an explicitly requested version 1.0.
    public static func encodeHeader(dtype: NPYDType, shape: [Int], version: NPYVersion? = nil) -> [UInt8]? {
        var dict = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': \(pythonTuple(shape)), }"
        // NumPy's spare room: enough spaces that the first axis could grow to 21 digits in place.
        if let first = shape.first {
            dict += String(repeating: " ", count: max(0, 21 - String(first).utf8.count))
        }
        let text = Array(dict.utf8)  // ASCII: the same bytes in latin-1 (1.0, 2.0) and UTF-8 (3.0)

        func wrap(_ version: NPYVersion) -> [UInt8]? {
            let unpadded = text.count + 1  // + newline
            // NumPy pads by 64 - (n % 64), i.e. a full 64 spaces when already aligned.
            let padding = 64 - (version.prefixLength + unpadded) % 64
            let dictLength = unpadded + padding
            guard dictLength <= version.maxDictLength else { return nil }
            var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version.major, version.minor]
            bytes.reserveCapacity(version.prefixLength + dictLength)
            let fieldSize = version.prefixLength - 8
            for i in 0..<fieldSize { bytes.append(UInt8(truncatingIfNeeded: dictLength >> (8 * i))) }
            bytes += text
            bytes += repeatElement(UInt8(ascii: " "), count: padding)
            bytes.append(UInt8(ascii: "\n"))
            return bytes
        }
        if let version { return wrap(version) }
        return wrap(.v1_0) ?? wrap(.v2_0)
    }
}

/// A shape as Python prints a tuple: `()`, `(3,)`, `(3, 4)`.
func pythonTuple(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}
