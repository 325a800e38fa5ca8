#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Where a job is when it enters a collective, for the stall message: what the program is doing
/// (a phase such as "training") and its position (epoch, step of steps, Adam step). Plain values,
/// so setting it every step allocates nothing.
public struct CollectiveContext: Sendable, Equatable {
    public var phase: StaticString
    public var epoch: Int
    public var step: Int
    public var steps: Int
    public var adamStep: Int

    public init(_ phase: StaticString, epoch: Int = 0, step: Int = 0, of steps: Int = 0, adamStep: Int = 0) {
        self.phase = phase
        self.epoch = epoch
        self.step = step
        self.steps = steps
        self.adamStep = adamStep
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.phase.description == b.phase.description && a.epoch == b.epoch && a.step == b.step
            && a.steps == b.steps && a.adamStep == b.adamStep
    }

    public var description: String {
        var s = phase.description
        if epoch > 0 { s += ", epoch \(epoch)" }
        if steps > 0 { s += ", step \(step) of \(steps)" }
        if adamStep > 0 { s += ", Adam step \(adamStep)" }
        return s
    }
}

/// A stall check in the manner of Horovod's: a background thread watches the collective this
/// process is in, and when one has not completed within `timeout` seconds (another rank died
/// without the job ending, hangs, or is far behind) it calls `onStall` with a message naming the
/// operation and the step, once. The caller decides what a stall does (the `unet` tool aborts the
/// job). Entering and leaving a collective costs a lock each; nothing is allocated.
public final class StallWatchdog: @unchecked Sendable {
    public let timeout: Double
    /// The limit while the context's phase is "setup" (rank 0 reading and preprocessing data or a
    /// checkpoint while the others wait in a broadcast, which takes as long as the storage makes
    /// it): at least this, so a short `timeout` meant for training steps does not end a job
    /// that is loading a large data set.
    public let setupTimeout: Double
    private struct Watch {
        var operation: StaticString = ""
        var count = 0
        var started: Double? = nil
        var context = CollectiveContext("setup")
        var fired = false
        var stopped = false
    }
    private let state = Mutex(Watch())
    private let onStall: @Sendable (String) -> Void
    private var thread = pthread_t()

    /// - Parameters:
    ///   - timeout: seconds a collective may take (> 0).
    ///   - onStall: called once, on the watchdog's thread, with a one-line message.
    public init(timeout: Double, setupTimeout: Double = 600, onStall: @escaping @Sendable (String) -> Void) {
        precondition(timeout > 0, "a stall timeout must be positive")
        self.timeout = timeout
        self.setupTimeout = max(timeout, setupTimeout)
        self.onStall = onStall
        let box = Unmanaged.passRetained(self)
        let rc = pthread_create(&thread, nil, { raw in
            let watchdog = Unmanaged<StallWatchdog>.fromOpaque(raw!).takeRetainedValue()
            watchdog.watch()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "cannot start the stall watchdog thread (pthread_create: \(rc))")
    }

    /// Ends the watchdog thread (it holds a reference to the watchdog until then).
    public func stop() {
        state.withLock { $0.stopped = true }
        pthread_join(thread, nil)
    }

    public func setContext(_ context: CollectiveContext) {
        state.withLock { $0.context = context }
    }

    /// Marks the start of a collective of `count` elements.
    public func enter(_ operation: StaticString, count: Int) {
        let now = monotonicClock()
        state.withLock {
            $0.operation = operation
            $0.count = count
            $0.started = now
        }
    }

    public func leave() {
        state.withLock { $0.started = nil }
    }

    private func watch() {
        let interval = min(1.0, timeout / 10)
        while true {
            sleepSeconds(interval)
            let now = monotonicClock()
            let stall: String? = state.withLock { s in
                if s.stopped { return "" }
                guard !s.fired, let started = s.started else { return nil }
                let limit = s.context.phase.description == "setup" ? setupTimeout : timeout
                guard now - started > limit else { return nil }
                s.fired = true
                return "stall: \(s.operation) of \(s.count) elements (\(s.context.description)) did not complete"
                    + " within \(Self.seconds(limit)) (--collective-timeout): another rank is gone, stuck or far behind"
            }
            guard let stall else { continue }
            if stall.isEmpty { return }
            onStall(stall)
        }
    }

    static func seconds(_ t: Double) -> String {
        t == t.rounded() ? "\(Int(t)) s" : "\(t) s"
    }
}

/// `CLOCK_MONOTONIC` in seconds (Distributed does not depend on Kernels' clock).
func monotonicClock() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// Sleeps `seconds` (resuming after signals).
public func sleepSeconds(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - seconds.rounded(.down)) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// A communicator whose every collective is watched by a `StallWatchdog`: the `unet` tool wraps
/// the MPI world in one, so the kernels and the trainer stay unaware of the check.
public final class WatchedCommunicator: Communicator, @unchecked Sendable {
    public let inner: any Communicator
    public let watchdog: StallWatchdog

    public init(_ inner: any Communicator, watchdog: StallWatchdog) {
        self.inner = inner
        self.watchdog = watchdog
    }

    public var rank: Int { inner.rank }
    public var size: Int { inner.size }

    public func annotate(_ context: CollectiveContext) { watchdog.setContext(context) }

    private func watched<T>(_ operation: StaticString, _ count: Int, _ body: () throws -> T) rethrows -> T {
        watchdog.enter(operation, count: count)
        defer { watchdog.leave() }
        return try body()
    }

    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        try watched("allreduce (float)", buffer.count) { try inner.allreduceSum(buffer) }
    }
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        try watched("allreduce (double)", buffer.count) { try inner.allreduceSum(buffer) }
    }
    public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
        try watched("broadcast (bytes)", buffer.count) { try inner.broadcast(buffer, root: root) }
    }
    public func gather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                       counts: [Int], root: Int) throws {
        try watched("gather (float)", send.count) { try inner.gather(send, into: receive, counts: counts, root: root) }
    }
    public func gather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer,
                       counts: [Int], root: Int) throws {
        try watched("gather (bytes)", send.count) { try inner.gather(send, into: receive, counts: counts, root: root) }
    }
    public func scatter(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>,
                        counts: [Int], root: Int) throws {
        try watched("scatter (float)", receive.count) { try inner.scatter(send, into: receive, counts: counts, root: root) }
    }
    public func barrier() throws {
        try watched("barrier", 0) { try inner.barrier() }
    }
    public func abort(code: Int32, message: String) -> Never {
        inner.abort(code: code, message: message)
    }
}
