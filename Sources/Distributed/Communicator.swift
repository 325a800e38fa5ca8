#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The collectives the trainer needs, behind one small interface (as Horovod does): the rest of
/// the program never calls MPI directly, and kernels and the model know nothing of it.
///
/// Every collective is blocking and must be called by every rank in the same order.
/// A process started without `mpirun` is a job of one rank; there is no second code path.
public protocol Communicator: AnyObject, Sendable {
    /// This process's rank, `0..<size`.
    var rank: Int { get }
    /// The number of ranks in the job.
    var size: Int { get }

    /// Sums `buffer` element-wise over all ranks, in place; every rank receives the sum.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Sums `buffer` element-wise over all ranks, in place; every rank receives the sum.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
    /// Replaces `buffer` on every rank with its contents on `root`.
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
    /// Concatenates every rank's `send` in rank order into `receive` on `root` (rank r sends
    /// `counts[r]` elements; `receive` holds their sum there and is ignored elsewhere).
    func gather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                counts: [Int], root: Int) throws
    /// The same for raw bytes (records of any bitwise-copyable type): rank r sends `counts[r]`
    /// bytes; the root receives them concatenated in rank order.
    func gather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer,
                counts: [Int], root: Int) throws
    /// The inverse of `gather`: rank r receives elements `counts[0..<r].sum()..<+counts[r]` of
    /// `send` on `root` (ignored elsewhere) into its `receive`.
    func scatter(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                 counts: [Int], root: Int) throws
    /// Returns once every rank has called it.
    func barrier() throws
    /// Ends the whole job (every rank) with `code`, after printing `message` prefixed by the rank.
    func abort(code: Int32, message: String) -> Never
    /// Tells the communicator where the job is, for a stall message (`WatchedCommunicator`);
    /// a no-op by default.
    func annotate(_ context: CollectiveContext)
}

public extension Communicator {
    /// True on the rank that alone writes logs, checkpoints and the submission.
    var isRoot: Bool { rank == 0 }

    func annotate(_ context: CollectiveContext) {}

    func allreduceSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    func allreduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    func broadcast<T: BitwiseCopyable>(_ values: inout [T], root: Int = 0) throws {
        try values.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }

    /// Gathers every rank's `values` (any number per rank) on `root`, concatenated in rank
    /// order; the other ranks get an empty array. Two collectives: an allreduce of the counts,
    /// then the gather of the bytes. For records of plain values (the timeline's events).
    func gather<T: BitwiseCopyable>(_ values: [T], root: Int = 0) throws -> [T] {
        var counts = [Double](repeating: 0, count: size)
        counts[rank] = Double(values.count)
        try allreduceSum(&counts)
        let stride = MemoryLayout<T>.stride
        let byteCounts = counts.map { Int($0) * stride }
        let total = rank == root ? counts.reduce(0) { $0 + Int($1) } : 0
        return try values.withUnsafeBytes { send in
            try [T](unsafeUninitializedCapacity: total) { buffer, initialized in
                try gather(send, into: UnsafeMutableRawBufferPointer(buffer), counts: byteCounts, root: root)
                initialized = total
            }
        }
    }

    /// Every rank's `text` on `root`, in rank order; the other ranks get an empty array.
    func gather(_ text: String, root: Int = 0) throws -> [String] {
        let bytes = Array(text.utf8)
        let lengths = try gather([Int64(bytes.count)], root: root)
        let all = try gather(bytes, root: root)
        var texts: [String] = [], start = 0
        for length in lengths {
            texts.append(String(decoding: all[start..<(start + Int(length))], as: UTF8.self))
            start += Int(length)
        }
        return texts
    }

    /// This rank's share of `count` items (see `share(of:rank:size:)`).
    func share(of count: Int) -> Range<Int> { Distributed.share(of: count, rank: rank, size: size) }

    /// Broadcasts one value (a scalar or a fixed-size struct of scalars) from `root`.
    func broadcast<T: BitwiseCopyable>(_ value: T, root: Int = 0) throws -> T {
        var copy = value
        try withUnsafeMutableBytes(of: &copy) { try broadcast($0, root: root) }
        return copy
    }
}

/// The contiguous share of `count` items (or of one batch) that `rank` of `size` takes: the
/// shares differ by at most one, the first `count % size` ranks taking one more.
public func share(of count: Int, rank: Int, size: Int) -> Range<Int> {
    let base = count / size, extra = count % size
    let start = rank * base + min(rank, extra)
    return start..<(start + base + (rank < extra ? 1 : 0))
}

/// A failed collective: the operation and the library's own message.
public struct CommunicatorError: Error, CustomStringConvertible {
    public let operation: String
    public let message: String
    public init(operation: String, message: String) {
        self.operation = operation
        self.message = message
    }
    public var description: String { "\(operation) failed: \(message)" }
}

/// The communicator of a process that is a whole job by itself, without MPI: every collective is
/// the identity. For library users and tests that train in one process; `unet` uses
/// `MPICommunicator.world`, which is also a 1-rank job when started without `mpirun`.
public final class SoloCommunicator: Communicator {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        guard root == 0 else { throw CommunicatorError(operation: "broadcast", message: "root \(root) is not a rank of a 1-rank job") }
    }
    public func gather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                       counts: [Int], root: Int) throws {
        guard root == 0, counts == [send.count], receive.count >= send.count else {
            throw CommunicatorError(operation: "gather", message: "counts \(counts) do not match a 1-rank job sending \(send.count)")
        }
        if send.count > 0 { receive.baseAddress!.update(from: send.baseAddress!, count: send.count) }
    }
    public func gather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer,
                       counts: [Int], root: Int) throws {
        guard root == 0, counts == [send.count], receive.count >= send.count else {
            throw CommunicatorError(operation: "gather", message: "counts \(counts) do not match a 1-rank job sending \(send.count) bytes")
        }
        if send.count > 0 { receive.baseAddress!.copyMemory(from: send.baseAddress!, byteCount: send.count) }
    }
    public func scatter(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                        counts: [Int], root: Int) throws {
        try gather(send, into: receive, counts: counts, root: root)
    }
    public func barrier() throws {}
    public func abort(code: Int32, message: String) -> Never {
        writeToStandardError("\(message)\n")
        exit(code)
    }
}
