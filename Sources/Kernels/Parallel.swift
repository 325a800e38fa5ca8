import COpenBLAS
import Dispatch

/// The kernels' own threads. With `threads > 1`, each convolution splits its work across them
/// (images for im2col, the forward GEMM and the input gradient; output channels for the kernel
/// gradient) and calls a single-threaded OpenBLAS on each part, instead of leaving the im2col,
/// col2im and element-wise loops on one core while OpenBLAS threads only the GEMMs.
///
/// Set once at start-up (`configure`), before any kernel runs; the default is one thread (and
/// OpenBLAS's own threading), which is what tests and 1-thread ranks use.
public enum Parallel {
    nonisolated(unsafe) public private(set) static var threads = 1

    /// Uses `threads` threads for the kernels; OpenBLAS is then single-threaded.
    public static func configure(threads: Int) {
        Self.threads = max(1, threads)
        if Self.threads > 1 { openblas_set_num_threads(1) }
    }

    /// The thread count a process should use: `UNET_THREADS` when set, else
    /// `OPENBLAS_NUM_THREADS` when set (the usual way to size a rank), else OpenBLAS's own choice.
    public static func threadsFromEnvironment() -> Int {
        for name in ["UNET_THREADS", "OPENBLAS_NUM_THREADS"] {
            if let value = getenv(name).flatMap({ Int(String(cString: $0)) }), value >= 1 { return value }
        }
        return Int(openblas_get_num_threads())
    }

    /// Runs `body(part)` for `part` in `0..<parts`, on up to `threads` threads; returns when all
    /// are done. `body` must only write memory that no other part touches.
    @inline(__always)
    static func forEach(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 || threads <= 1 {
            for part in 0..<parts { body(part) }
        } else {
            withoutActuallyEscaping(body) { body in
                let shared = UncheckedBox(body)
                DispatchQueue.concurrentPerform(iterations: parts) { shared.value($0) }
            }
        }
    }

    /// The `part`-th of `parts` contiguous, nearly equal ranges of `0..<count`.
    @inline(__always)
    static func range(_ part: Int, of parts: Int, count: Int) -> Range<Int> {
        let base = count / parts, extra = count % parts
        let start = part * base + min(part, extra)
        return start..<(start + base + (part < extra ? 1 : 0))
    }
}

/// Hands a value to other threads when the caller guarantees they use it safely.
private struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
