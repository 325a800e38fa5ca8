import COpenBLAS
import Synchronization

/// The kernels' own threads. With `threads > 1`, each convolution splits its work across them
/// (images for im2col, the forward GEMM and the input gradient; output channels for the kernel
/// gradient) and calls a single-threaded OpenBLAS on each part, instead of leaving the im2col,
/// col2im and element-wise loops on one core while OpenBLAS threads only the GEMMs.
///
/// Set once at start-up (`configure`), before any kernel runs; the default is one thread (and
/// OpenBLAS's own threading), which is what tests and 1-thread ranks use. The workers are
/// persistent threads woken through a condition variable: a parallel loop allocates nothing
/// (Dispatch's `concurrentPerform` allocated about 20 blocks per call).
public enum Parallel {
    /// The thread count and its pool, behind a lock: `unet` sets them once, but tests change
    /// them while other tests run kernels (a race ThreadSanitizer found). A kernel that reads a
    /// count and then finds another pool is still correct: `forEach` runs any number of parts
    /// on whatever pool there is, or serially.
    private static let state = Mutex<(threads: Int, pool: WorkerPool?)>((1, nil))

    public static var threads: Int { state.withLock { $0.threads } }

    /// Uses `threads` threads for the kernels (the caller and `threads - 1` workers); OpenBLAS is
    /// then single-threaded. Meant to be called once, before any kernel runs.
    public static func configure(threads: Int) {
        let threads = max(1, threads)
        if threads > 1 { openblas_set_num_threads(1) }
        state.withLock { state in
            if threads != state.threads {
                state.pool = threads > 1 ? WorkerPool(workers: threads - 1) : nil
                state.threads = threads
            }
        }
    }

    /// The thread count a process should use: `UNET_THREADS` when set, else
    /// `OPENBLAS_NUM_THREADS` when set (the usual way to size a rank), else OpenBLAS's own choice.
    public static func threadsFromEnvironment() -> Int {
        for name in ["UNET_THREADS", "OPENBLAS_NUM_THREADS"] {
            if let value = getenv(name).flatMap({ Int(String(cString: $0)) }), value >= 1 { return value }
        }
        return Int(openblas_get_num_threads())
    }

    /// Runs `body(part)` for `part` in `0..<parts` on the caller and the workers; returns when all
    /// are done. `body` must only write memory that no other part touches.
    @inline(__always)
    static func forEach(_ parts: Int, _ body: (Int) -> Void) {
        guard parts > 1, let pool = state.withLock({ $0.pool }) else {
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

/// `workers` persistent threads; `run` hands them one loop at a time. Thread t of T = workers + 1 (the caller is thread 0) runs parts t, t + T, ...
private final class WorkerPool: @unchecked Sendable {
    private let workers: Int
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    /// Held for a whole `run`: one loop at a time, even if two threads call kernels at once
    /// (the test runner does; `unet` runs the kernels from one thread).
    private let client = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let wake = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let done = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    // Guarded by `lock`.
    private var generation = 0
    private var remaining = 0
    private var parts = 0
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
            while generation == seen { pthread_cond_wait(wake, lock) }
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
