import DataIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The 512-byte header a checkpoint starts with, in HDF5's user block: HDF5 places its
/// superblock after it, and HDF5, h5py and Keras skip it without reading it. It makes the whole
/// file checkable before HDF5 parses a byte of it — HDF5 is not robust against damaged files (it
/// can crash or allocate without bound on a fuzzed one), so a damaged checkpoint must never
/// reach it.
///
///     offset  size  field (little-endian)
///          0     8  magic "UNETCKPT"
///          8     4  header version, 1
///         12     4  user block size, 512 (HDF5's superblock follows)
///         16     8  length of the whole file in bytes, header included
///         24     4  CRC-32 (zlib's) of every byte after the user block: [512, length)
///         28     4  CRC-32 of the 512-byte block with these 4 bytes zero
///         32   480  an ASCII note saying the above, NUL-padded
///
/// Checked with the Python standard library alone:
/// `zlib.crc32(data[512:]) == int.from_bytes(data[24:28], "little")`.
///
/// Reading (`verify`) checks, in this order and before HDF5 sees the file: the header's own
/// checksum, its version, the file's length against the recorded one (truncated, or data
/// appended), and the CRC-32 of the rest. A file without the header — a Keras weights file, or a
/// checkpoint of a version before the header existed — starts with HDF5's signature itself and
/// is passed to HDF5 unchecked (its inner FNV-1a checksums are still verified after parsing).
enum CheckpointHeader {
    static let size = 512
    static let magic: [UInt8] = Array("UNETCKPT".utf8)
    static let version: UInt32 = 1

    private static let versionAt = 8, blockSizeAt = 12, lengthAt = 16, checksumAt = 24, headerChecksumAt = 28
    private static let noteAt = 32
    static let note = """
        UNetTrainer checkpoint. An HDF5 file (Keras legacy weights layout) follows this 512-byte \
        HDF5 user block. Little-endian: u32 header version at byte 8, u32 user block size at 12, \
        u64 file length at 16, u32 CRC-32 (zlib) of bytes [512, length) at 24, u32 CRC-32 of \
        this block with bytes 28-31 zero at 28.

        """

    /// Fills the header of `file`, a whole checkpoint whose first `size` bytes HDF5 left free.
    static func stamp(_ file: UnsafeMutableRawBufferPointer) {
        precondition(file.count >= size)
        let block = UnsafeMutableRawBufferPointer(rebasing: file[0..<size])
        block.initializeMemory(as: UInt8.self, repeating: 0)
        block.copyBytes(from: magic)
        block.storeBytes(of: version.littleEndian, toByteOffset: versionAt, as: UInt32.self)
        block.storeBytes(of: UInt32(size).littleEndian, toByteOffset: blockSizeAt, as: UInt32.self)
        block.storeBytes(of: UInt64(file.count).littleEndian, toByteOffset: lengthAt, as: UInt64.self)
        let checksum = CRC32.checksum(UnsafeRawBufferPointer(rebasing: file[size...]))
        block.storeBytes(of: checksum.littleEndian, toByteOffset: checksumAt, as: UInt32.self)
        UnsafeMutableRawBufferPointer(rebasing: block[noteAt...]).copyBytes(from: note.utf8.prefix(size - noteAt))
        let headerChecksum = CRC32.checksum(UnsafeRawBufferPointer(block))
        block.storeBytes(of: headerChecksum.littleEndian, toByteOffset: headerChecksumAt, as: UInt32.self)
    }

    /// What `verify` found.
    enum Kind: Equatable {
        /// A checkpoint with this header, whose every byte is as written.
        case verified
        /// An HDF5 file without the header (its superblock at byte 0): a Keras weights file or a
        /// checkpoint written before the header existed. Only HDF5 can check it.
        case plainHDF5
    }

    /// Checks the file at `path` as described above, reading it once in 1 MiB pieces (memory
    /// does not depend on anything the file says). Throws a `DataError` naming the file and the
    /// problem: a damaged header, truncation, data appended, a checksum mismatch, or a file
    /// that is neither a checkpoint nor HDF5.
    static func verify(_ path: String) throws -> Kind {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DataError(path, String(cString: strerror(errno))) }
        defer { _ = close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw DataError(path, String(cString: strerror(errno))) }
        let fileSize = Int(status.st_size)

        var block = [UInt8](repeating: 0, count: size)
        let got = try block.withUnsafeMutableBytes { try readFully(fd, $0, at: 0, path: path) }
        if got >= 8, block.starts(with: H5.signature) { return .plainHDF5 }
        guard got >= magic.count, block.starts(with: magic) else {
            if let location = try hdf5Signature(fd, fileSize: fileSize, path: path) {
                throw DataError(path, "unrecognised \(location)-byte block before the HDF5 data (a damaged"
                    + " checkpoint header?): not read")
            }
            throw DataError(path, "not an HDF5 file")
        }
        guard got == size else {
            throw DataError(path, "truncated: \(fileSize) bytes, less than its \(size)-byte checkpoint header")
        }
        func field<T: FixedWidthInteger>(_ offset: Int, _: T.Type) -> T {
            block.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        let storedHeaderChecksum = field(headerChecksumAt, UInt32.self)
        let headerChecksum = block.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: 0, toByteOffset: headerChecksumAt, as: UInt32.self)
            return CRC32.checksum(UnsafeRawBufferPointer(raw))
        }
        guard headerChecksum == storedHeaderChecksum else {
            throw DataError(path, "checksum mismatch in the checkpoint header: the file is damaged"
                + " (expected \(hex(storedHeaderChecksum)), found \(hex(headerChecksum)))")
        }
        let headerVersion = field(versionAt, UInt32.self)
        guard headerVersion == version else {
            throw DataError(path, "checkpoint header version \(headerVersion), this program reads version \(version)")
        }
        let blockSize = field(blockSizeAt, UInt32.self), length = field(lengthAt, UInt64.self)
        guard blockSize == size, length >= UInt64(size), length < 1 << 62 else {
            throw DataError(path, "invalid checkpoint header: a \(blockSize)-byte user block, \(length) bytes in all")
        }
        guard fileSize == Int(length) else {
            throw DataError(path, fileSize < Int(length)
                ? "truncated: \(fileSize) of \(length) bytes"
                : "\(fileSize - Int(length)) bytes after the end of the checkpoint (\(length) bytes): the file is damaged")
        }

        var crc = CRC32()
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { chunk.deallocate() }
        var offset = size
        while offset < fileSize {
            let piece = UnsafeMutableRawBufferPointer(rebasing: chunk[0..<min(chunk.count, fileSize - offset)])
            let count = try readFully(fd, piece, at: offset, path: path)
            guard count == piece.count else {
                throw DataError(path, "truncated while being read: \(offset + count) of \(length) bytes")
            }
            crc.update(UnsafeRawBufferPointer(piece))
            offset += count
        }
        let expected = field(checksumAt, UInt32.self)
        guard crc.value == expected else {
            throw DataError(path, "checksum mismatch: the file is damaged (expected \(hex(expected)),"
                + " found \(hex(crc.value)))")
        }
        return .verified
    }

    /// Where HDF5's signature is (512, 1024, 2048, ... bytes in, as after a user block), if anywhere.
    private static func hdf5Signature(_ fd: Int32, fileSize: Int, path: String) throws -> Int? {
        var location = size
        var bytes = [UInt8](repeating: 0, count: 8)
        while location + 8 <= fileSize {
            let got = try bytes.withUnsafeMutableBytes { try readFully(fd, $0, at: location, path: path) }
            if got == 8, bytes == H5.signature { return location }
            location *= 2
        }
        return nil
    }

    /// `pread` until `buffer` is full or the file ends; the number of bytes read.
    private static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int,
                                  path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError(path, "cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// `0x` and eight hexadecimal digits.
func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}

// MARK: - Durable writes

/// The system calls `DurableFile.write` makes, so that a test can make any of them fail (a
/// full disk, a short write, a failing `fsync` or `rename`) where no real failure can be
/// arranged. Each returns what the system call returns and sets `errno` on failure.
struct FileOperations: Sendable {
    var open: @Sendable (_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32
    var write: @Sendable (_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int
    var fsync: @Sendable (_ fd: Int32) -> Int32
    var close: @Sendable (_ fd: Int32) -> Int32
    var rename: @Sendable (_ from: String, _ to: String) -> Int32

    static let system = FileOperations(open: systemOpen, write: systemWrite, fsync: systemFsync,
                                       close: systemClose, rename: systemRename)
}

// The system calls themselves (named apart: inside `FileOperations` the plain names are its members).
private func systemOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func systemFsync(_ fd: Int32) -> Int32 { fsync(fd) }
private func systemClose(_ fd: Int32) -> Int32 { close(fd) }
private func systemRename(_ from: String, _ to: String) -> Int32 { rename(from, to) }

/// Writes a file so that it replaces the previous one only when complete and on disk: to a
/// temporary name beside it (`StagedOutputs.temporaryPath`), `fsync`ed, closed, renamed over
/// the destination, and the folder `fsync`ed so the rename itself survives a crash. Until the
/// rename, the previous file is untouched; on any failure the temporary file is removed (so a
/// full disk gets its space back) and the error names the destination, the step and the
/// system's reason, e.g.
///
///     run/unet.h5: cannot write temporary file run/.unet.h5.tmp-81-3: No space left on device (the previous file is unchanged)
enum DurableFile {
    static func write(_ bytes: UnsafeRawBufferPointer, to path: String, operations: FileOperations = .system) throws {
        let temporary = StagedOutputs.temporaryPath(for: path)
        var status = stat()
        let hasPrevious = stat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG
        func failure(_ what: String, _ code: Int32) -> DataError {
            DataError(path, "\(what): \(String(cString: strerror(code)))"
                + (hasPrevious ? " (the previous file is unchanged)" : ""))
        }

        let fd = operations.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw failure("cannot create temporary file \(temporary)", errno) }
        var isOpen = true
        var renamed = false
        defer {
            if isOpen { _ = operations.close(fd) }
            if !renamed { unlink(temporary) }
        }
        var written = 0
        while written < bytes.count {
            let n = operations.write(fd, bytes.baseAddress! + written, min(bytes.count - written, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot write temporary file \(temporary)", errno)
            }
            guard n > 0 else {
                throw DataError(path, "cannot write temporary file \(temporary): the system accepted only"
                    + " \(written) of \(bytes.count) bytes" + (hasPrevious ? " (the previous file is unchanged)" : ""))
            }
            written += n
        }
        guard operations.fsync(fd) == 0 else { throw failure("cannot flush temporary file \(temporary) to disk", errno) }
        isOpen = false
        guard operations.close(fd) == 0 else { throw failure("cannot close temporary file \(temporary)", errno) }
        guard operations.rename(temporary, path) == 0 else { throw failure("cannot rename into place", errno) }
        renamed = true

        // The rename is durable once the folder is: fsync it (filesystems that cannot sync a
        // folder say EINVAL; nothing more can be done there).
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let folderFD = operations.open(folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
        guard folderFD >= 0 else {
            throw DataError(path, "written, but its folder cannot be opened to sync it to disk:"
                + " \(String(cString: strerror(errno)))")
        }
        defer { _ = operations.close(folderFD) }
        if operations.fsync(folderFD) != 0, errno != EINVAL {
            throw DataError(path, "written, but its folder cannot be synced to disk: \(String(cString: strerror(errno)))")
        }
    }
}
