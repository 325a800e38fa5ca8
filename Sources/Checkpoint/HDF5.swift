import CHDF5

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A problem inside an HDF5 file, in one line and without the file's path (the public entry
/// points turn it into `DataError(path, message)`). Names and text read from a damaged file can
/// hold any byte: control characters are shown escaped (`\x07`), so the message stays one line.
struct HDF5Problem: Error {
    let message: String
    init(_ message: String) { self.message = Self.printable(message) }

    static func printable(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            if scalar.value < 0x20 || (0x7f...0x9f).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}" {
                let digits = String(scalar.value, radix: 16)
                out += scalar.value <= 0xff ? "\\x" + String(repeating: "0", count: 2 - digits.count) + digits
                                            : "\\u{\(digits)}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// The few HDF5 calls the checkpoint needs, as throwing helpers.
///
/// Every helper that opens or creates an object returns its id; the caller closes it with
/// `defer { H5.close(id) }`. Failures become `HDF5Problem`s carrying HDF5's own most specific
/// message (its automatic error printing is switched off by `quietly`).
enum H5 {
    static var plist: hid_t { chdf5_p_default() }

    // MARK: Errors and ids

    /// Runs `body` with HDF5's automatic error-stack printing off, restoring the previous handler
    /// afterwards. (The library is built thread-safe: the setting belongs to the calling thread.)
    static func quietly<T>(_ body: () throws -> T) rethrows -> T {
        var function: H5E_auto2_t? = nil
        var data: UnsafeMutableRawPointer? = nil
        H5Eget_auto2(chdf5_e_default(), &function, &data)
        H5Eset_auto2(chdf5_e_default(), nil, nil)
        defer { H5Eset_auto2(chdf5_e_default(), function, data) }
        return try body()
    }

    /// The most specific message on this thread's error stack (left by the last failed call).
    static func lastError() -> String {
        var text: String? = nil
        withUnsafeMutablePointer(to: &text) { slot in
            _ = H5Ewalk2(chdf5_e_default(), H5E_WALK_UPWARD, { n, error, slot in
                if n == 0, let message = error?.pointee.desc {
                    slot?.assumingMemoryBound(to: String?.self).pointee = String(cString: message)
                }
                return 0
            }, slot)
        }
        return text ?? "unknown HDF5 error"
    }

    /// Returns `result`, or throws "`what`: <HDF5's message>" when it is negative (failure).
    @discardableResult
    static func check<T: BinaryInteger>(_ result: T, _ what: @autoclosure () -> String) throws -> T {
        guard result >= 0 else { throw HDF5Problem("\(what()): \(lastError())") }
        return result
    }

    /// Closes any id this file's helpers return (file, group, dataset, attribute, space, type).
    static func close(_ id: hid_t) {
        switch H5Iget_type(id) {
        case H5I_FILE: H5Fclose(id)
        case H5I_GROUP: H5Gclose(id)
        case H5I_DATASET: H5Dclose(id)
        case H5I_ATTR: H5Aclose(id)
        case H5I_DATASPACE: H5Sclose(id)
        case H5I_DATATYPE: H5Tclose(id)
        default: break
        }
    }

    // MARK: Writing

    static func createGroup(_ location: hid_t, _ name: String) throws -> hid_t {
        try check(H5Gcreate2(location, name, plist, plist, plist), "cannot create group \(name)")
    }

    /// A dataspace of `shape`: simple, or scalar for `[]`.
    static func dataspace(_ shape: [Int]) throws -> hid_t {
        if shape.isEmpty { return try check(H5Screate(chdf5_s_scalar()), "cannot create a dataspace") }
        let dims = shape.map { hsize_t($0) }
        return try check(H5Screate_simple(Int32(dims.count), dims, nil), "cannot create a dataspace")
    }

    /// A contiguous little-endian float32 dataset holding `values` with `shape`.
    static func writeFloats(_ location: hid_t, _ name: String, _ values: UnsafeBufferPointer<Float>,
                            shape: [Int]) throws -> hid_t {
        let space = try dataspace(shape)
        defer { close(space) }
        let dataset = try check(H5Dcreate2(location, name, chdf5_ieee_f32le(), space, plist, plist, plist),
                                "cannot create dataset \(name)")
        do {
            try check(H5Dwrite(dataset, chdf5_native_float(), chdf5_s_all(), chdf5_s_all(), plist,
                               values.baseAddress), "cannot write dataset \(name)")
        } catch {
            close(dataset)
            throw error
        }
        return dataset
    }

    /// A number attribute (scalar dataspace).
    static func setAttribute<T: HDF5Number>(_ object: hid_t, _ name: String, _ value: T) throws {
        var value = value
        try writeAttribute(object, name, type: T.fileType, memoryType: T.memoryType, shape: [], &value)
    }

    /// A zero-length float64 array attribute: what Keras (through h5py) stores as the
    /// `weight_names` of a layer without weights.
    static func setEmptyAttribute(_ object: hid_t, _ name: String) throws {
        try writeAttribute(object, name, type: chdf5_ieee_f64le(), memoryType: chdf5_native_double(),
                           shape: [0], nil)
    }

    /// A variable-length string attribute: one string (scalar) or an array of them.
    static func setAttribute(_ object: hid_t, _ name: String, string: String, utf8: Bool = false) throws {
        try withVariableStrings([string], utf8: utf8) { type, pointers in
            try writeAttribute(object, name, type: type, memoryType: type, shape: [], pointers)
        }
    }

    static func setAttribute(_ object: hid_t, _ name: String, strings: [String], utf8: Bool = false) throws {
        try withVariableStrings(strings, utf8: utf8) { type, pointers in
            try writeAttribute(object, name, type: type, memoryType: type, shape: [strings.count], pointers)
        }
    }

    /// A scalar variable-length UTF-8 string dataset (no size limit, unlike attributes).
    static func writeString(_ location: hid_t, _ name: String, _ string: String) throws {
        try withVariableStrings([string], utf8: true) { type, pointers in
            let space = try dataspace([])
            defer { close(space) }
            let dataset = try check(H5Dcreate2(location, name, type, space, plist, plist, plist),
                                    "cannot create dataset \(name)")
            defer { close(dataset) }
            try check(H5Dwrite(dataset, type, chdf5_s_all(), chdf5_s_all(), plist, pointers),
                      "cannot write dataset \(name)")
        }
    }

    private static func writeAttribute(_ object: hid_t, _ name: String, type: hid_t, memoryType: hid_t,
                                       shape: [Int], _ data: UnsafeRawPointer?) throws {
        let space = try dataspace(shape)
        defer { close(space) }
        let attribute = try check(H5Acreate2(object, name, type, space, plist, plist),
                                  "cannot create attribute \(name)")
        defer { close(attribute) }
        guard let data else { return }  // an empty attribute has nothing to write
        try check(H5Awrite(attribute, memoryType, data), "cannot write attribute \(name)")
    }

    /// Calls `body` with a variable-length C string type (ASCII or UTF-8, as h5py writes Python
    /// bytes or str) and C copies of `strings`.
    private static func withVariableStrings(_ strings: [String], utf8: Bool,
                                            _ body: (hid_t, UnsafeRawPointer) throws -> Void) throws {
        let type = try variableStringType(utf8: utf8)
        defer { close(type) }
        let copies = strings.map { UnsafePointer(strdup($0)) }
        defer { copies.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
        try copies.withUnsafeBufferPointer { try body(type, UnsafeRawPointer($0.baseAddress!)) }
    }

    private static func variableStringType(utf8: Bool) throws -> hid_t {
        let type = try check(H5Tcopy(chdf5_c_s1()), "cannot create a string type")
        guard H5Tset_size(type, chdf5_variable()) >= 0,
              H5Tset_cset(type, utf8 ? H5T_CSET_UTF8 : H5T_CSET_ASCII) >= 0 else {
            close(type)
            throw HDF5Problem("cannot create a string type: \(lastError())")
        }
        return type
    }

    // MARK: Reading

    /// Whether the link `path` (slash-separated, relative to `location`) exists, checking each
    /// level in turn (H5Lexists fails rather than answering for a missing intermediate group).
    static func exists(_ location: hid_t, _ path: String) -> Bool {
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += prefix.isEmpty ? String(part) : "/\(part)"
            guard H5Lexists(location, prefix, plist) > 0 else { return false }
        }
        return !prefix.isEmpty
    }

    static func openGroup(_ location: hid_t, _ path: String) throws -> hid_t {
        guard exists(location, path), H5Oexists_by_name(location, path, plist) > 0 else {
            throw HDF5Problem("missing group \(path)")
        }
        return try check(H5Gopen2(location, path, plist), "cannot open group \(path)")
    }

    static func openDataset(_ location: hid_t, _ path: String) throws -> hid_t {
        guard exists(location, path), H5Oexists_by_name(location, path, plist) > 0 else {
            throw HDF5Problem("missing dataset \(path)")
        }
        return try check(H5Dopen2(location, path, plist), "cannot open dataset \(path)")
    }

    static func hasAttribute(_ object: hid_t, _ name: String) -> Bool {
        H5Aexists(object, name) > 0
    }

    /// The extent of a dataset (`[]` for a scalar).
    static func shape(_ dataset: hid_t, _ name: String) throws -> [Int] {
        let space = try check(H5Dget_space(dataset), "cannot read the shape of \(name)")
        defer { close(space) }
        return try extent(space, name)
    }

    private static func extent(_ space: hid_t, _ name: String) throws -> [Int] {
        let rank = Int(try check(H5Sget_simple_extent_ndims(space), "cannot read the shape of \(name)"))
        var dims = [hsize_t](repeating: 0, count: rank)
        try check(H5Sget_simple_extent_dims(space, &dims, nil), "cannot read the shape of \(name)")
        return dims.map { Int(clamping: $0) }  // a damaged extent beyond Int.max: shown as Int.max
    }

    /// Reads a floating-point dataset whose shape the caller checked into `buffer` as float32.
    static func readFloats(_ dataset: hid_t, _ name: String, into buffer: UnsafeMutableBufferPointer<Float>) throws {
        let type = try check(H5Dget_type(dataset), "cannot read the type of \(name)")
        defer { close(type) }
        guard H5Tget_class(type) == H5T_FLOAT else { throw HDF5Problem("dataset \(name) is not floating point") }
        try check(H5Dread(dataset, chdf5_native_float(), chdf5_s_all(), chdf5_s_all(), plist,
                          buffer.baseAddress), "cannot read dataset \(name)")
    }

    /// A scalar (or one-element) number attribute.
    static func attribute<T: HDF5Number>(_ object: hid_t, _ name: String, as: T.Type = T.self) throws -> T {
        let attribute = try openAttribute(object, name)
        defer { close(attribute) }
        let (type, space) = try typeAndSpace(attribute, name)
        defer { close(type); close(space) }
        guard H5Tget_class(type) == T.typeClass, H5Sget_simple_extent_npoints(space) == 1 else {
            throw HDF5Problem("attribute \(name) is not a single \(T.self)")
        }
        var value = T.zero
        try check(H5Aread(attribute, T.memoryType, &value), "cannot read attribute \(name)")
        return value
    }

    /// A string or string-array attribute (variable or fixed length); an empty array of any type
    /// (as Keras stores a weightless layer's `weight_names`) reads as `[]`.
    static func stringsAttribute(_ object: hid_t, _ name: String) throws -> [String] {
        let attribute = try openAttribute(object, name)
        defer { close(attribute) }
        let (type, space) = try typeAndSpace(attribute, name)
        defer { close(type); close(space) }
        return try readStrings(type: type, space: space, name: "attribute \(name)",
                               storage: Int(clamping: H5Aget_storage_size(attribute))) { memoryType, buffer in
            H5Aread(attribute, memoryType, buffer)
        }
    }

    /// A scalar string dataset, as `writeString` writes it.
    static func stringDataset(_ location: hid_t, _ path: String) throws -> String {
        let dataset = try openDataset(location, path)
        defer { close(dataset) }
        let type = try check(H5Dget_type(dataset), "cannot read the type of \(path)")
        defer { close(type) }
        let space = try check(H5Dget_space(dataset), "cannot read the shape of \(path)")
        defer { close(space) }
        let strings = try readStrings(type: type, space: space, name: "dataset \(path)",
                                      storage: Int(clamping: H5Dget_storage_size(dataset))) { memoryType, buffer in
            H5Dread(dataset, memoryType, chdf5_s_all(), chdf5_s_all(), plist, buffer)
        }
        guard strings.count == 1 else { throw HDF5Problem("dataset \(path) is not a single string") }
        return strings[0]
    }

    private static func openAttribute(_ object: hid_t, _ name: String) throws -> hid_t {
        guard hasAttribute(object, name) else { throw HDF5Problem("missing attribute \(name)") }
        return try check(H5Aopen(object, name, plist), "cannot open attribute \(name)")
    }

    private static func typeAndSpace(_ attribute: hid_t, _ name: String) throws -> (hid_t, hid_t) {
        let type = try check(H5Aget_type(attribute), "cannot read the type of attribute \(name)")
        let space = H5Aget_space(attribute)
        guard space >= 0 else {
            close(type)
            throw HDF5Problem("cannot read the shape of attribute \(name): \(lastError())")
        }
        return (type, space)
    }

    /// `storage`: the bytes the strings take in the file (H5Aget_storage_size or
    /// H5Dget_storage_size), which bound their number (a variable-length string takes 16 bytes
    /// there, its text being elsewhere) and so what is allocated here, whatever a damaged
    /// dataspace says.
    private static func readStrings(type: hid_t, space: hid_t, name: String, storage: Int,
                                    read: (hid_t, UnsafeMutableRawPointer) -> herr_t) throws -> [String] {
        let count = Int(try check(H5Sget_simple_extent_npoints(space), "cannot read the shape of \(name)"))
        if count == 0 { return [] }
        guard H5Tget_class(type) == H5T_STRING else { throw HDF5Problem("\(name) is not a string") }
        let size = H5Tget_size(type)
        let (total, overflow) = count.multipliedReportingOverflow(by: max(size, 1))
        guard size > 0, !overflow, total <= storage else {
            throw HDF5Problem("\(name): \(count) strings of \(size) bytes do not fit its \(storage) bytes in the file")
        }
        if H5Tis_variable_str(type) > 0 {
            let memoryType = try variableStringType(utf8: H5Tget_cset(type) == H5T_CSET_UTF8)
            defer { close(memoryType) }
            var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            _ = try pointers.withUnsafeMutableBytes { raw in
                try check(read(memoryType, raw.baseAddress!), "cannot read \(name)")
            }
            defer { _ = pointers.withUnsafeMutableBytes { H5Dvlen_reclaim(memoryType, space, plist, $0.baseAddress) } }
            return pointers.map { $0.map { String(cString: $0) } ?? "" }
        }
        // Fixed length: `size` bytes each, padded with NULs or spaces.
        var bytes = [UInt8](repeating: 0, count: count * size)
        _ = try bytes.withUnsafeMutableBytes { raw in
            try check(read(type, raw.baseAddress!), "cannot read \(name)")
        }
        let spacePadded = H5Tget_strpad(type) == H5T_STR_SPACEPAD
        return (0..<count).map { i in
            var item = bytes[(i * size)..<((i + 1) * size)]
            if let nul = item.firstIndex(of: 0) { item = item[..<nul] }
            if spacePadded { while item.last == 0x20 { item = item.dropLast() } }
            return String(decoding: item, as: UTF8.self)
        }
    }
}

/// The number types stored as attributes, with their HDF5 types (file: little-endian standard;
/// memory: native).
protocol HDF5Number: BitwiseCopyable {
    static var fileType: hid_t { get }
    static var memoryType: hid_t { get }
    static var typeClass: H5T_class_t { get }
    static var zero: Self { get }
}

extension Int64: HDF5Number {
    static var fileType: hid_t { chdf5_std_i64le() }
    static var memoryType: hid_t { chdf5_native_int64() }
    static var typeClass: H5T_class_t { H5T_INTEGER }
}

extension UInt64: HDF5Number {
    static var fileType: hid_t { chdf5_std_u64le() }
    static var memoryType: hid_t { chdf5_native_uint64() }
    static var typeClass: H5T_class_t { H5T_INTEGER }
}

extension Float: HDF5Number {
    static var fileType: hid_t { chdf5_ieee_f32le() }
    static var memoryType: hid_t { chdf5_native_float() }
    static var typeClass: H5T_class_t { H5T_FLOAT }
}

extension Double: HDF5Number {
    static var fileType: hid_t { chdf5_ieee_f64le() }
    static var memoryType: hid_t { chdf5_native_double() }
    static var typeClass: H5T_class_t { H5T_FLOAT }
}

// MARK: - Truncation

extension H5 {
    /// The size a file's HDF5 superblock says it has, when that is more than the file's actual
    /// size: `(actual, stored)` for a truncated file, nil otherwise (or when undecidable).
    ///
    /// Checked before `H5Fopen`, which also detects truncation but, in HDF5 1.10, leaves library
    /// state behind on that failure ("HDF5: infinite loop closing library" at exit). The
    /// superblock sits at offset 0, 512, 1024, 2048, ... (after a user block); its end-of-file
    /// address is at byte 24 + 2 x sizeof(offsets) (version 0), 28 + 2 x (version 1) or
    /// 12 + 2 x (versions 2 and 3). Unlike the other addresses it is absolute: it counts the
    /// user block (HDF5 compares it with the file's size; checked with h5py and HDF5 1.10).
    static func truncation(_ path: String) -> (actual: Int, stored: Int)? {
        guard let (fd, size) = openForReading(path) else { return nil }
        defer { closeDescriptor(fd) }
        var location = 0
        while location + 48 <= size {
            var header = [UInt8](repeating: 0, count: 48)
            guard pread(fd, &header, 48, off_t(location)) == 48 else { return nil }
            if header.starts(with: signature) {
                guard let stored = header.withUnsafeBytes(storedEnd) else { return nil }
                return stored > size ? (size, stored) : nil
            }
            location = location == 0 ? 512 : 2 * location
        }
        return nil
    }

    /// HDF5's format signature, which starts every superblock.
    static let signature: [UInt8] = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]

    /// Where the superblock of the in-memory file `image` is and where the file ends by its
    /// account (its end-of-file address); nil when neither is found.
    static func superblockEnd(_ image: UnsafeRawBufferPointer) -> (location: Int, end: Int)? {
        var location = 0
        while location + 48 <= image.count {
            let header = UnsafeRawBufferPointer(rebasing: image[location..<(location + 48)])
            if header.starts(with: signature) {
                return storedEnd(header).map { (location, $0) }
            }
            location = location == 0 ? 512 : 2 * location
        }
        return nil
    }

    /// The end of the file by the account of the superblock whose first 48 bytes are `header`
    /// (its end-of-file address, which is absolute); nil when undecidable (unknown version, odd
    /// offset size, undefined or absurd addresses).
    private static func storedEnd(_ header: UnsafeRawBufferPointer) -> Int? {
        let (offsetSize, baseAt): (Int, Int)
        switch header[8] {
        case 0: (offsetSize, baseAt) = (Int(header[13]), 24)
        case 1: (offsetSize, baseAt) = (Int(header[13]), 28)
        case 2, 3: (offsetSize, baseAt) = (Int(header[9]), 12)
        default: return nil
        }
        guard offsetSize == 8 || offsetSize == 4, baseAt + 3 * offsetSize <= 48 else { return nil }
        func address(_ at: Int) -> UInt64 {
            (0..<offsetSize).reduce(UInt64(0)) { $0 | UInt64(header[at + $1]) << (8 * UInt64($1)) }
        }
        let end = address(baseAt + 2 * offsetSize)
        let undefined = offsetSize == 8 ? UInt64.max : UInt64(UInt32.max)
        guard end != undefined, end < 1 << 62 else { return nil }
        return Int(end)
    }
}

/// `close(2)` (inside `H5`, `close` names the HDF5 helper).
private func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}

/// A descriptor open for reading and the file's size, nil when either fails (the pre-checks
/// then leave the diagnosis to HDF5).
private func openForReading(_ path: String) -> (fd: Int32, size: Int)? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    var status = stat()
    guard fstat(fd, &status) == 0 else {
        closeDescriptor(fd)
        return nil
    }
    return (fd, Int(status.st_size))
}

// MARK: - Global heap collections

extension H5 {
    /// A problem with a global heap collection of the HDF5 file at `path` (where HDF5 keeps
    /// variable-length strings: `layer_names`, `weight_names`, the configuration, the history),
    /// or nil when all are sound (or the file cannot be examined).
    ///
    /// HDF5 1.10 decodes a collection trusting its sizes: an object whose size runs past the end
    /// of its collection makes `H5HG_read` read out of bounds (SIGSEGV), a free-space object of
    /// size 0 makes the decoder loop forever. Fuzzing files without the checkpoint header
    /// (CheckpointFuzzTests) found both, and every hang found there was one; this walks every
    /// collection as HDF5 will, before HDF5 does. (It cannot see a damaged reference to a
    /// collection's object, which sits in an attribute's data: HDF5 1.10 still crashes on some of
    /// those.) Collections are found by their signature, "GCOL" then version 1 and three zero
    /// bytes (8 bytes that float data does not produce by chance); the layout is the HDF5 format
    /// specification's (III.E).
    static func globalHeapDamage(_ path: String) -> String? {
        guard let (fd, size) = openForReading(path) else { return nil }
        defer { closeDescriptor(fd) }
        func read(_ count: Int, at offset: Int) -> [UInt8]? {
            guard offset >= 0, offset + count <= size else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            return pread(fd, &bytes, count, off_t(offset)) == count ? bytes : nil
        }
        func number(_ bytes: ArraySlice<UInt8>) -> UInt64 {
            bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        // The size of lengths, from the superblock at byte 0 (this check is for files without a
        // user block).
        guard let superblock = read(16, at: 0), superblock.starts(with: signature) else { return nil }
        let lengthSize: Int
        switch superblock[8] {
        case 0, 1: lengthSize = Int(superblock[14])
        case 2, 3: lengthSize = Int(superblock[10])
        default: return nil
        }
        guard lengthSize == 8 || lengthSize == 4 else { return nil }
        let headerSize = (8 + lengthSize + 7) & ~7  // "GCOL", version, reserved, size; aligned to 8
        let objectHeaderSize = (8 + lengthSize + 7) & ~7  // index, references, reserved, size

        let chunkSize = 1 << 20
        var chunk = [UInt8](repeating: 0, count: chunkSize + 3)
        var start = 0
        while start < size {
            let count = min(chunk.count, size - start)
            guard pread(fd, &chunk, count, off_t(start)) == count else { return nil }
            let hits: [Int] = chunk.withUnsafeBytes { raw in
                var hits: [Int] = []
                var from = 0
                while from + 4 <= count, let g = memchr(raw.baseAddress! + from, 0x47, count - from - 3) {
                    let i = UnsafeRawPointer(g) - raw.baseAddress!
                    if raw[i + 1] == 0x43, raw[i + 2] == 0x4f, raw[i + 3] == 0x4c { hits.append(i) }
                    from = i + 1
                }
                return hits
            }
            for i in hits {
                let at = start + i
                guard let header = read(headerSize, at: at), header[4] == 1, header[5...7].allSatisfy({ $0 == 0 }) else {
                    continue
                }
                let collectionSize = number(header[8..<(8 + lengthSize)])
                guard collectionSize >= UInt64(headerSize), collectionSize <= UInt64(size - at) else {
                    return "damaged HDF5 global heap at byte \(at): a collection of \(collectionSize) bytes"
                        + " in a file of \(size)"
                }
                let end = at + Int(collectionSize)
                var p = at + headerSize
                while p < end {
                    guard p + objectHeaderSize <= end else { break }  // too small for an object: free space
                    guard let object = read(objectHeaderSize, at: p) else { return nil }
                    let index = number(object[0..<2])
                    let objectSize = number(object[8..<(8 + lengthSize)])
                    let need = index > 0 ? UInt64(objectHeaderSize) &+ ((objectSize &+ 7) & ~7) : objectSize
                    guard need >= UInt64(objectHeaderSize), objectSize < 1 << 62, need <= UInt64(end - p) else {
                        return "damaged HDF5 global heap at byte \(at): object \(index) at byte \(p) has \(objectSize)"
                            + " bytes, the collection ends at byte \(end)"
                    }
                    p += Int(need)
                }
            }
            start += chunkSize
        }
        return nil
    }
}
