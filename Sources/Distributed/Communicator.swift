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
    /// Returns once every rank has called it.
    func barrier() throws
    /// Ends the whole job (every rank) with `code`, after printing `message` prefixed by the rank.
    func abort(code: Int32, message: String) -> Never
}

public extension Communicator {
    /// True on the rank that alone writes logs, checkpoints and the submission.
    var isRoot: Bool { rank == 0 }

    func allreduceSum(_ values: inout [Float]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    func allreduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    }

    func broadcast<T: BitwiseCopyable>(_ values: inout [T], root: Int = 0) throws {
        try values.withUnsafeMutableBytes { try broadcast($0, root: root) }
    }

    /// Broadcasts one value (a scalar or a fixed-size struct of scalars) from `root`.
    func broadcast<T: BitwiseCopyable>(_ value: T, root: Int = 0) throws -> T {
        var copy = value
        try withUnsafeMutableBytes(of: &copy) { try broadcast($0, root: root) }
        return copy
    }
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
