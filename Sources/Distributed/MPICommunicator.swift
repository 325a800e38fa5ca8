import CMPI

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `Communicator` over `MPI_COMM_WORLD`.
///
/// `MPICommunicator.world` initialises MPI once per process (`MPI_Init_thread`, funneled: only the
/// thread that trains calls MPI). Started without `mpirun`, Open MPI's singleton start makes a job
/// of one rank. Errors are returned rather than fatal (`MPI_ERRORS_RETURN`) so they surface as
/// Swift errors naming the operation.
public final class MPICommunicator: Communicator, @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let comm: MPI_Comm

    /// The world communicator, initialising MPI on first use.
    public static let world = MPICommunicator()

    private init() {
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            var provided: Int32 = 0
            let rc = MPI_Init_thread(nil, nil, cmpi_thread_funneled(), &provided)
            if rc != cmpi_success() {
                writeToStandardError("error: MPI_Init_thread failed with code \(rc)\n")
                exit(1)
            }
            // MPI must be finalized before a process of an mpirun job exits, or mpirun reports the
            // job as failed. Finalizing at exit covers every way out (the end of `main`, `exit()`,
            // a test runner finishing) without any code path having to remember it.
            atexit {
                var finalized: Int32 = 0
                MPI_Finalized(&finalized)
                if finalized == 0 { MPI_Finalize() }
            }
        }
        comm = cmpi_comm_world()
        MPI_Comm_set_errhandler(comm, cmpi_errors_return())
        var r: Int32 = 0
        var s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
    }

    /// The MPI library's own version string (for `unet info`).
    public static var libraryVersion: String {
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_library_version_string()) + 1)
        var length: Int32 = 0
        MPI_Get_library_version(&buffer, &length)
        return cString(buffer).split(whereSeparator: \.isNewline).joined(separator: " ")
    }

    /// Ends MPI cleanly. Call once, at the end of the program, on every rank; never from a test.
    public func finalize() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized == 0 { MPI_Finalize() }
    }

    /// The largest element count one MPI call takes (counts are 32-bit); larger buffers go in chunks.
    static let maxChunk = Int(Int32.max)

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try chunked(buffer.count) { offset, count in
            try check("MPI_Allreduce", MPI_Allreduce(
                cmpi_in_place(), buffer.baseAddress! + offset, Int32(count),
                cmpi_float(), cmpi_op_sum(), comm))
        }
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try chunked(buffer.count) { offset, count in
            try check("MPI_Allreduce", MPI_Allreduce(
                cmpi_in_place(), buffer.baseAddress! + offset, Int32(count),
                cmpi_double(), cmpi_op_sum(), comm))
        }
    }

    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root >= 0, root < size else {
            throw CommunicatorError(operation: "MPI_Bcast", message: "root \(root) is not a rank of a \(size)-rank job")
        }
        try chunked(buffer.count) { offset, count in
            try check("MPI_Bcast", MPI_Bcast(
                buffer.baseAddress! + offset, Int32(count), cmpi_byte(), Int32(root), comm))
        }
    }

    public func gather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                       counts: [Int], root: Int) throws {
        let (c, d) = try layout("MPI_Gatherv", counts, mine: send.count, root: root, total: receive.count)
        var dummy: Float = 0
        try withUnsafeMutablePointer(to: &dummy) { dummy in
            try check("MPI_Gatherv", MPI_Gatherv(
                send.baseAddress ?? UnsafePointer(dummy), Int32(send.count), cmpi_float(),
                receive.baseAddress ?? dummy, c, d, cmpi_float(), Int32(root), comm))
        }
    }

    public func gather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer,
                       counts: [Int], root: Int) throws {
        let (c, d) = try layout("MPI_Gatherv", counts, mine: send.count, root: root, total: receive.count)
        var dummy: UInt8 = 0
        try withUnsafeMutablePointer(to: &dummy) { dummy in
            try check("MPI_Gatherv", MPI_Gatherv(
                send.baseAddress ?? UnsafeRawPointer(dummy), Int32(send.count), cmpi_byte(),
                receive.baseAddress ?? UnsafeMutableRawPointer(dummy), c, d, cmpi_byte(), Int32(root), comm))
        }
    }

    public func scatter(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                        counts: [Int], root: Int) throws {
        let (c, d) = try layout("MPI_Scatterv", counts, mine: receive.count, root: root, total: send.count)
        var dummy: Float = 0
        try withUnsafeMutablePointer(to: &dummy) { dummy in
            try check("MPI_Scatterv", MPI_Scatterv(
                send.baseAddress ?? UnsafePointer(dummy), c, d, cmpi_float(),
                receive.baseAddress ?? dummy, Int32(receive.count), cmpi_float(), Int32(root), comm))
        }
    }

    /// Checks a gather/scatter layout and returns its 32-bit counts and displacements.
    private func layout(_ operation: String, _ counts: [Int], mine: Int, root: Int, total: Int) throws -> ([Int32], [Int32]) {
        guard root >= 0, root < size else {
            throw CommunicatorError(operation: operation, message: "root \(root) is not a rank of a \(size)-rank job")
        }
        guard counts.count == size, counts[rank] == mine, counts.allSatisfy({ $0 >= 0 }) else {
            throw CommunicatorError(operation: operation, message: "counts \(counts) do not match \(size) ranks with \(mine) elements on rank \(rank)")
        }
        let sum = counts.reduce(0, +)
        guard sum <= Int(Int32.max) else {
            throw CommunicatorError(operation: operation, message: "\(sum) elements exceed MPI's 32-bit counts")
        }
        guard rank != root || total >= sum else {
            throw CommunicatorError(operation: operation, message: "the root's buffer holds \(total) elements, \(sum) needed")
        }
        var displacements = [Int32](), offset = 0
        for c in counts { displacements.append(Int32(offset)); offset += c }
        return (counts.map { Int32($0) }, displacements)
    }

    public func barrier() throws {
        try check("MPI_Barrier", MPI_Barrier(comm))
    }

    public func abort(code: Int32, message: String) -> Never {
        writeToStandardError("[rank \(rank)] \(message)\n")
        MPI_Abort(comm, code)
        exit(code)  // MPI_Abort does not return; this satisfies the type checker.
    }

    private func chunked(_ count: Int, _ body: (Int, Int) throws -> Void) throws {
        var offset = 0
        while offset < count {
            let n = min(Self.maxChunk, count - offset)
            try body(offset, n)
            offset += n
        }
    }

    private func check(_ operation: String, _ code: Int32) throws {
        guard code != cmpi_success() else { return }
        var buffer = [CChar](repeating: 0, count: Int(cmpi_max_error_string()) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        throw CommunicatorError(operation: operation, message: cString(buffer))
    }
}

/// The text of a NUL-terminated C character buffer.
func cString(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes `text` to file descriptor 2 unbuffered (safe from any thread, and before an abort).
public func writeToStandardError(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { return }
        offset += n
    }
}
