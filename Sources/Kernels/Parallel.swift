import COpenBLAS

/// The threads a caller lends the kernels: a count and, above one, its persistent workers. Every
/// kernel takes one (`on threads:`) and splits its work across them (images for im2col, the
/// forward GEMM and the input gradient; output channels for the kernel gradient; tiles for
/// Winograd), calling a single-threaded OpenBLAS on each part, instead of leaving the im2col,
/// col2im and element-wise loops on one core while OpenBLAS threads only the GEMMs.
///
/// A value, not a process setting: the model sizes its workspace by the `count` it was built
/// with and splits its sums by it, so two models (or two tests) with different counts can run at
/// once without either seeing the other's. `one` runs every part on the caller (and leaves
/// OpenBLAS's own threading as it is). The workers sleep on a condition variable between loops,
/// so a parallel loop allocates nothing (Dispatch's `concurrentPerform` allocated about 20
/// blocks per call); they exit when the value is released.
///
/// With more than one thread, OpenBLAS should run single-threaded (`openblas_set_num_threads(1)`),
/// or each part's GEMM would start OpenBLAS's threads too: that is the process's choice, made
/// once where it starts (`unet`'s `Job.run`), not here.
public final class KernelThreads: Sendable {
    /// How many threads run a kernel's parts: the caller and `count - 1` workers.
    public let count: Int
    private let pool: WorkerPool?

    /// One thread: the caller alone.
    public static let one = KernelThreads(1)

    public init(_ count: Int) {
        self.count = max(1, count)
        pool = self.count > 1 ? WorkerPool(workers: self.count - 1) : nil
    }

    deinit { pool?.stop() }

    /// The thread count a process should use: `UNET_THREADS` when set, else
    /// `OPENBLAS_NUM_THREADS` when set (the usual way to size a rank), else OpenBLAS's own choice.
    public static func countFromEnvironment() -> Int {
        for name in ["UNET_THREADS", "OPENBLAS_NUM_THREADS"] {
            if let value = getenv(name).flatMap({ Int(String(cString: $0)) }), value >= 1 { return value }
        }
        return Int(openblas_get_num_threads())
    }

    /// Runs `body(part)` for `part` in `0..<parts` on the caller and the workers; returns when all
    /// are done. `body` must only write memory that no other part touches. Any number of parts
    /// works; a kernel asks for at most `count` so that each thread gets one contiguous part.
    @inline(__always)
    func forEach(_ parts: Int, _ body: (Int) -> Void) {
        guard parts > 1, let pool else {
            for part in 0..<parts { body(part) }
            return
        }
        pool.run(parts, body)
    }

    /// The `part`-th of `parts` contiguous, nearly equal ranges of `0..<count`.
    @inline(__always)
    static func range(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }
}

/// `workers` persistent threads; `run` hands them one loop at a time. Thread t of T = workers + 1
/// (the caller is thread 0) runs parts t, t + T, ... Each worker holds the pool until it exits
/// (after `stop`), so the pool outlives the `KernelThreads` that stopped it.
private final class WorkerPool: @unchecked Sendable {
    private let workers: Int
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Held for a whole `run`: one loop at a time, should two threads call kernels on the same
    /// `KernelThreads` at once.
    private let client = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by `lock`.
    private var generation = 0
    private var remaining = 0
    private var parts = 0
    private var stopping = false
    /// The running loop's `Job`, on the caller's stack (a raw pointer: an optional closure
    /// property would be stored reabstracted, which allocates a thunk per loop).
    private var job: UnsafeRawPointer? = nil

    private struct Job {
        let body: (Int) -> Void
    }

    init(workers: Int) {
        self.workers = workers
        pthread_mutex_init(lock, nil)
        pthread_mutex_init(client, nil)
        pthread_cond_init(wake, nil)
        pthread_cond_init(done, nil)
        for index in 1...workers {
            let context = Unmanaged.passRetained(WorkerStart(pool: self, index: index)).toOpaque()
            var thread = pthread_t()
            let rc = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
                start.pool.loop(index: start.index)
                return nil
            }, context)
            precondition(rc == 0, "cannot start a kernel thread (pthread_create: \(rc))")
            pthread_detach(thread)
        }
    }

    deinit {
        pthread_cond_destroy(done)
        pthread_cond_destroy(wake)
        pthread_mutex_destroy(client)
        pthread_mutex_destroy(lock)
        for p in [lock, client] { p.deallocate() }
        for c in [wake, done] { c.deallocate() }
    }

    /// Ends the workers once they are idle (no loop runs: `KernelThreads` is being released).
    func stop() {
        pthread_mutex_lock(lock)
        stopping = true
        pthread_cond_broadcast(wake)
        pthread_mutex_unlock(lock)
    }

    func run(_ parts: Int, _ body: (Int) -> Void) {
        pthread_mutex_lock(client)
        defer { pthread_mutex_unlock(client) }
        withoutActuallyEscaping(body) { body in
            var current = Job(body: body)
            withUnsafePointer(to: &current) { pointer in
                pthread_mutex_lock(lock)
                job = UnsafeRawPointer(pointer)
                self.parts = parts
                remaining = workers
                generation &+= 1
                pthread_cond_broadcast(wake)
                pthread_mutex_unlock(lock)
                var part = 0
                while part < parts { body(part); part += workers + 1 }
                pthread_mutex_lock(lock)
                while remaining > 0 { pthread_cond_wait(done, lock) }
                job = nil  // the workers are done with it before it leaves the stack
                pthread_mutex_unlock(lock)
            }
        }
    }

    private func loop(index: Int) {
        var seen = 0
        while true {
            pthread_mutex_lock(lock)
            while generation == seen && !stopping { pthread_cond_wait(wake, lock) }
            if generation == seen {  // stopping, and no loop waits for this worker
                pthread_mutex_unlock(lock)
                return
            }
            seen = generation
            do {  // the job is only used until `remaining` is decremented
                let job = self.job!.assumingMemoryBound(to: Job.self), parts = self.parts
                pthread_mutex_unlock(lock)
                var part = index
                while part < parts { job.pointee.body(part); part += workers + 1 }
            }
            pthread_mutex_lock(lock)
            remaining -= 1
            if remaining == 0 { pthread_cond_signal(done) }
            pthread_mutex_unlock(lock)
        }
    }
}

private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) {
        self.pool = pool
        self.index = index
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
