#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// An open .npy file being read front to back with POSIX `read`.
struct NPYFile {
    let path: String
    let fd: Int32
    /// Size in bytes when opened (`fstat`).
    let size: Int

    /// Header dicts longer than this are refused before being read: NumPy arrays have at most
    /// 64 axes, whose header is well under 2 KB; only structured dtypes (unsupported) need more.
    static let maxDictLength = 1 << 20

    private static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Reads the header and checks it against the file size; afterwards the file offset is at
    /// the first data byte.
    func readHeader() throws -> NPYHeader {
        // Magic string and version.
        let start = try readBytes(8)
        guard start.starts(with: Self.magic.prefix(start.count)) else {
            let found = start.prefix(6).map { hex($0) }.joined(separator: " ")
            throw DataError(path, "not a .npy file: bad magic string (expected 93 4E 55 4D 50 59,"
                + " i.e. \\x93NUMPY; found \(found))")
        }
        guard start.count == 8 else {
            throw DataError(path, "truncated header: the file has only \(size) bytes")
        }
        guard let version = NPYVersion(major: start[6], minor: start[7]) else {
            throw DataError(path, "unsupported .npy format version \(start[6]).\(start[7])"
                + " (supported: 1.0, 2.0, 3.0)")
        }

        // Header length, then the header dict.
        let field = try readBytes(version.prefixLength - 8)
        guard field.count == version.prefixLength - 8 else {
            throw DataError(path, "truncated header: the file has only \(size) bytes")
        }
        let dictLength = field.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let headerLength = version.prefixLength + dictLength
        guard headerLength <= size else {
            throw DataError(path, "truncated header: the header needs \(headerLength) bytes,"
                + " the file has \(size)")
        }
        guard dictLength <= Self.maxDictLength else {
            throw DataError(path, "header dict of \(dictLength) bytes is implausibly long"
                + " (limit \(Self.maxDictLength))")
        }
        let dictBytes = try readBytes(dictLength)
        guard dictBytes.count == dictLength else {
            throw DataError(path, "truncated header: the header needs \(headerLength) bytes,"
                + " the file has \(version.prefixLength + dictBytes.count)")
        }
        let fields: NPYHeaderFields
        do {
            fields = try NPYHeaderFields(dictBytes, utf8: version == .v3_0)
        } catch {
            throw DataError(path, error.message)
        }

        // The data must be exactly what the shape needs.
        let shapeText = pythonTuple(fields.shape)
        let count = NDArray<UInt8>.elementCount(of: fields.shape)
        let product = count?.multipliedReportingOverflow(by: fields.dtype.itemSize)
        guard let product, !product.overflow else {
            throw DataError(path, "header shape \(shapeText) of \(fields.dtype) is too large:"
                + " its byte count overflows a 64-bit integer")
        }
        let needed = product.partialValue
        let available = size - headerLength
        if available != needed {
            let problem = available < needed ? "truncated body" : "extra trailing bytes"
            throw DataError(path, "\(problem): header shape \(shapeText) of \(fields.dtype)"
                + " needs \(needed) bytes, file has \(available)")
        }
        return NPYHeader(version: version, dtype: fields.dtype, shape: fields.shape,
                         headerLength: headerLength)
    }

    /// Reads the data described by `header` (just read) straight into a new array's storage.
    func readData<T: NPYScalar>(_ header: NPYHeader) throws -> [T] {
        precondition(T.npyDType == header.dtype && MemoryLayout<T>.stride == header.dtype.itemSize)
        let count = header.elementCount
        // The size matches the file, but a (sparse) file can be larger than memory: refuse it
        // here rather than fail to allocate.
        let memory = physicalMemoryBytes()
        guard header.dataLength <= memory else {
            throw DataError(path, "header shape \(pythonTuple(header.shape)) of \(header.dtype) needs"
                + " \(header.dataLength) bytes, more than this machine's \(memory) bytes of memory")
        }
        return try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            let got = try readFully(into: UnsafeMutableRawBufferPointer(buffer))
            guard got == count * MemoryLayout<T>.stride else {
                // The size was checked; the file shrank while being read.
                throw DataError(path, "truncated body: header shape \(pythonTuple(header.shape))"
                    + " of \(header.dtype) needs \(header.dataLength) bytes, file has \(got)")
            }
            initialized = count
        }
    }

    /// Fills `buffer` with the next bytes of the data described by `header` (checked against the
    /// file size when the header was read): a shorter read means the file shrank.
    func readDataChunk(into buffer: UnsafeMutableRawBufferPointer, of header: NPYHeader) throws {
        let got = try readFully(into: buffer)
        guard got == buffer.count else {
            throw DataError(path, "truncated body: header shape \(pythonTuple(header.shape))"
                + " of \(header.dtype) needs \(header.dataLength) bytes, the file ended early")
        }
    }

    /// Reads up to `count` bytes (fewer only at end of file).
    private func readBytes(_ count: Int) throws -> [UInt8] {
        try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            initialized = try readFully(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Fills `buffer` from the file, looping over short reads; returns the bytes read (fewer
    /// than `buffer.count` only at end of file).
    private func readFully(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let base = buffer.baseAddress else { return 0 }
        var done = 0
        while done < buffer.count {
            let chunk = min(buffer.count - done, 1 << 30)
            let n = read(fd, base + done, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError(path, "read error: \(systemErrorText())")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// Opens `path` for reading, runs `body`, and closes the file.
func withOpenFile<R>(_ path: String, _ body: (NPYFile) throws -> R) throws -> R {
    // O_NONBLOCK: opening a FIFO named like a .npy file must not wait for a writer (it is then
    // refused as not a regular file); reads of regular files are unaffected.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw DataError(path, "cannot open: \(systemErrorText())") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw DataError(path, "cannot stat: \(systemErrorText())") }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw DataError(path, "not a regular file") }
    return try body(NPYFile(path: path, fd: fd, size: Int(info.st_size)))
}

/// Writes all of `bytes` to `fd`, looping over short writes; errors name `path`.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    guard let base = bytes.baseAddress else { return }
    var done = 0
    while done < bytes.count {
        let n = write(fd, base + done, min(bytes.count - done, 1 << 30))
        if n < 0 {
            if errno == EINTR { continue }
            throw DataError(path, "write error: \(systemErrorText())")
        }
        done += n
    }
}

private func hex(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
}
