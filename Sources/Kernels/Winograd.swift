import COpenBLAS
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// 3x3 "same" convolution, stride 1, by Winograd's minimal filtering F(2x2, 3x3) (Lavin and
/// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): the same layer as `Conv3x3`
/// (Keras kernel layout `(kh, kw, in, out)`, bias, fused activation, gradients accumulated) with
/// 16 multiplications per 2x2 output tile and channel pair instead of 36, 2.25x fewer.
///
/// The image is cut into 2x2 output tiles, each reading a 4x4 input patch (zero outside the
/// image). With the transforms
///
///     B^T = | 1  0 -1  0 |     G = | 1    0    0   |     A^T = | 1  1  1  0 |
///           | 0  1  1  0 |         | 1/2  1/2  1/2 |           | 0  1 -1 -1 |
///           | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
///           | 0  1  0 -1 |         | 0    0    1   |
///
/// a tile's output is `A^T [ Σ_in (G g G^T) ⊙ (B^T d B) ] A`. For each of the 16 positions ξ of
/// the transformed 4x4 tile, the sum over input channels is a GEMM
/// `M[ξ] (tiles x out) = V[ξ] (tiles x in) x U[ξ] (in x out)`, so the work is 16 GEMMs on
/// blocks of tiles plus three cheap transforms, vectorised along channels (NHWC keeps a pixel's
/// channels contiguous). Every transform uses 0, ±1 and ±1/2 only, so the result differs from
/// direct convolution by rounding alone (a few ulps of the accumulated sums; the tests compare
/// against `Conv3x3` at 1e-5 relative to the output's scale).
///
/// The passes:
/// - forward: as above, then bias and activation while writing the tile's 2x2 outputs.
/// - backward data: dL/dx is the "same" convolution of dL/d(pre-activation) with the kernel
///   turned by 180 degrees and its channel axes swapped. Turning `g` permutes the rows of `G`
///   (`G R = P G`, P swapping positions 0 and 3), so its transform is `U` with ξ = (i, j) read at
///   (p(i), p(j)), and the channel swap is a transposed GEMM operand: nothing new to transform.
/// - backward weights: the adjoint of the forward, `dU[ξ] += V[ξ]^T dM[ξ]` with
///   `dM = A dY A^T` per tile, then `dL/dg = G^T dU G`.
///
/// Work is split across the caller's `KernelThreads` by tiles; each thread transforms a block of
/// tiles, runs the 16 single-threaded GEMMs on it and writes its outputs, so nothing is shared but the
/// transformed kernel (read only); the kernel gradient is summed per thread and reduced once
/// (from 128 output channels on, the threads split the output channels instead: one sum). A
/// layer whose transformed kernel exceeds `defaultKernelBudget` runs in channel slices (see
/// `slices`). The input may be a `Concatenation` read in place, and the input gradient written
/// to its parts. The caller provides the workspace (`workspace(...)` floats), so a pass
/// allocates nothing.
public enum Winograd3x3 {
    /// Tiles per block: the block's transformed input and output (16 x tiles x (in + out)
    /// floats) stay within about 4 MB per thread, between 16 and 1024 tiles (the environment
    /// can override the three figures for tuning: Docs/MODEL.md).
    static func blockTiles(inChannels: Int, outChannels: Int) -> Int {
        max(1, min(maxTiles, max(minTiles, budget / (16 * (inChannels + outChannels)))))
    }
    static let budget = env("UNET_WINOGRAD_BUDGET") ?? (1 << 20)
    static let minTiles = env("UNET_WINOGRAD_MIN") ?? 16
    static let maxTiles = env("UNET_WINOGRAD_MAX") ?? 1024
    static func env(_ name: String) -> Int? { getenv(name).flatMap { Int(String(cString: $0)) } }

    /// Floats of workspace one thread's block needs: V, M and one zero pixel of the wider side.
    static func blockCount(inChannels: Int, outChannels: Int) -> Int {
        16 * blockTiles(inChannels: inChannels, outChannels: outChannels) * (inChannels + outChannels)
            + max(inChannels, outChannels)
    }

    /// Floats of `work` that every pass needs for a layer with these channels on `threads`
    /// threads: the transformed kernel (or thread 0's kernel-gradient sum), the other threads'
    /// kernel-gradient sums and a block per thread. `kernelBudget` bounds the kernel-sized
    /// regions (see `slices`).
    public static func workspace(inChannels: Int, outChannels: Int, threads: Int,
                                 kernelBudget: Int = defaultKernelBudget) -> Int {
        let t = max(1, threads)
        return kernelRegions(inChannels: inChannels, outChannels: outChannels, threads: t)
            * regionCount(inChannels: inChannels, outChannels: outChannels, kernelBudget: kernelBudget)
            + t * blockCount(inChannels: inChannels, outChannels: outChannels)
    }

    /// Floats a transformed kernel (or kernel gradient) may take: 8 MB. A layer whose
    /// `16 x in x out` is larger runs in slices of output channels (forward, backward weights)
    /// or of input channels (backward data), each slice transforming the tiles again: the
    /// U-Net's 512 x 512 layers (and, with nearest upsampling, the 768 x 256 one) take two
    /// slices and 8 MB of workspace instead of 16. A 4 MB budget (four slices, more repeated
    /// transforms) saves 4 MB more; no speed difference between the two was measurable here
    /// (Docs/BENCHMARKS.md). The environment can override it for tuning (Docs/MODEL.md).
    public static let defaultKernelBudget = max(16 * 8, env("UNET_WINOGRAD_KERNEL") ?? (1 << 21))

    /// The slices of `channels` (the sliced side of the kernel) against `other` (the whole
    /// side): as few as the budget allows, of equal widths in multiples of 8 (at least 8).
    /// Lazy: a pass allocates nothing.
    static func slices(_ channels: Int, against other: Int,
                       kernelBudget: Int) -> LazyMapSequence<StrideTo<Int>, Range<Int>> {
        let width = sliceWidth(channels, against: other, kernelBudget: kernelBudget)
        return stride(from: 0, to: channels, by: width).lazy.map { $0..<min(channels, $0 + width) }
    }

    static func sliceWidth(_ channels: Int, against other: Int, kernelBudget: Int) -> Int {
        let fit = kernelBudget / (16 * other)
        if fit >= channels { return channels }
        let widest = max(8, fit / 8 * 8)
        let count = (channels + widest - 1) / widest
        return ((channels + count - 1) / count + 7) / 8 * 8  // <= widest: widest is a multiple of 8
    }

    /// Floats of one kernel-sized region: the largest slice of any pass.
    static func regionCount(inChannels ci: Int, outChannels co: Int, kernelBudget: Int) -> Int {
        16 * max(ci * sliceWidth(co, against: ci, kernelBudget: kernelBudget),
                 co * sliceWidth(ci, against: co, kernelBudget: kernelBudget))
    }

    /// How many kernel-sized regions open the workspace: the transformed kernel or the kernel
    /// gradient's sums, one per thread when the threads split the tiles.
    static func kernelRegions(inChannels: Int, outChannels: Int, threads: Int) -> Int {
        splitsOutputChannels(outChannels: outChannels, threads: threads) ? 1 : max(1, threads)
    }

    /// Where the threads' blocks start in the workspace of a layer with these channels.
    static func blocks(_ work: UnsafeMutablePointer<Float>, inChannels ci: Int, outChannels co: Int,
                       threads: Int, kernelBudget: Int) -> UnsafeMutablePointer<Float> {
        work + kernelRegions(inChannels: ci, outChannels: co, threads: threads)
            * regionCount(inChannels: ci, outChannels: co, kernelBudget: kernelBudget)
    }

    /// Whether the kernel gradient's threads split the output channels (each transforming every
    /// tile's input, and summing straight into the one dU) rather than the tiles (each its own
    /// dU, reduced at the end). From 128 output channels on, the duplicated input transforms
    /// cost under 5% of the GEMMs (about 3 x threads / out of them), and the per-thread dU —
    /// 16 MB for the U-Net's 512 x 512 layers — is the larger cost.
    static func splitsOutputChannels(outChannels: Int, threads: Int) -> Bool {
        threads > 1 && outChannels >= 128
    }

    /// `pool.count`, or fewer if the workspace was planned for fewer (a caller lending more
    /// threads than it sized the workspace for).
    static func usableThreads(inChannels ci: Int, outChannels co: Int, workCount: Int, kernelBudget: Int,
                              pool: KernelThreads) -> Int {
        func needed(_ threads: Int) -> Int {
            workspace(inChannels: ci, outChannels: co, threads: threads, kernelBudget: kernelBudget)
        }
        var threads = pool.count
        while threads > 1 && needed(threads) > workCount { threads -= 1 }
        precondition(workCount >= needed(threads), "Winograd workspace too small: \(workCount) < \(needed(threads))")
        return threads
    }

    /// The tiling of an image: output tiles of 2x2 (the last row or column of tiles half outside
    /// when the height or width is odd).
    struct Tiling {
        let height: Int, width: Int, tilesY: Int, tilesX: Int
        init(height: Int, width: Int) {
            self.height = height
            self.width = width
            tilesY = (height + 1) / 2
            tilesX = (width + 1) / 2
        }
        var perImage: Int { tilesY * tilesX }
    }

    // MARK: Forward

    /// `output = activation(conv(input, kernel) + bias)`; `input` and `output` may be channel
    /// slices (as in the U-Net's concatenations).
    public static func forward(input x: TensorView, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               output y: TensorView, activation: Activation,
                               work: UnsafeMutablePointer<Float>, workCount: Int,
                               kernelBudget: Int = defaultKernelBudget, on pool: KernelThreads) {
        forward(input: Concatenation(x), kernel: kernel, bias: bias, output: y, activation: activation,
                work: work, workCount: workCount, kernelBudget: kernelBudget, on: pool)
    }

    /// The same, of a concatenation read in place (the U-Net decoder's [upsampled | skip]).
    public static func forward(input x: Concatenation, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               output y: TensorView, activation: Activation,
                               work: UnsafeMutablePointer<Float>, workCount: Int,
                               kernelBudget: Int = defaultKernelBudget, on pool: KernelThreads) {
        precondition(x.batch == y.batch && x.height == y.height && x.width == y.width)
        let (ci, co) = (x.channels, y.channels)
        let threads = usableThreads(inChannels: ci, outChannels: co, workCount: workCount, kernelBudget: kernelBudget,
                                    pool: pool)
        let u = work
        let blockStart = blocks(work, inChannels: ci, outChannels: co, threads: threads, kernelBudget: kernelBudget)
        for slice in slices(co, against: ci, kernelBudget: kernelBudget) {
            let sc = slice.count
            transformKernel(kernel, inChannels: ci, outChannels: co, rows: 0..<ci, columns: slice, into: u, on: pool)
            let ySlice = Concatenation(y.channels(slice))
            runBlocks(batch: x.batch, height: x.height, width: x.width, ci: ci, co: co, threads: threads, pool: pool,
                      blocks: blockStart) { tiles, block, _ in
                let v = block, m = block + 16 * tiles.count * ci, zero = m + 16 * tiles.count * sc
                inputTransform(x, tiles: tiles, zero: zero, into: v)
                // V is stored tile by tile (the transform writes one stream); M position by
                // position, each M[ξ] contiguous, which halves the cost of OpenBLAS zeroing C for
                // beta = 0 (sgemm_beta: 9.4 -> 5.8% of an inference step; the output transform,
                // now reading 16 streams, 6.0 -> 7.9%).
                for xi in 0..<16 {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                Int32(tiles.count), Int32(sc), Int32(ci),
                                1, v + xi * ci, Int32(16 * ci), u + xi * ci * sc, Int32(sc),
                                0, m + xi * tiles.count * sc, Int32(sc))
                }
                outputTransform(m, tiles: tiles, into: ySlice, bias: bias + slice.lowerBound, activation: activation)
            }
        }
    }

    // MARK: Backward

    /// Overwrites `dInput` with dL/dx from `dOutput`, which must hold dL/d(pre-activation)
    /// (`backwardWeights` leaves it there).
    public static func backwardData(kernel: UnsafePointer<Float>, dOutput dy: TensorView, dInput dx: TensorView,
                                    work: UnsafeMutablePointer<Float>, workCount: Int,
                                    kernelBudget: Int = defaultKernelBudget, on pool: KernelThreads) {
        backwardData(kernel: kernel, dOutput: dy, dInput: Concatenation(dx), work: work, workCount: workCount,
                     kernelBudget: kernelBudget, on: pool)
    }

    /// The same into a concatenation's gradients: each part's gradient goes to its own view; an
    /// upsampled part's view (the low-resolution tensor's gradient) is overwritten with the sums
    /// over its 2x2 blocks, the adjoint of nearest upsampling, so the full-resolution gradient
    /// of the upsampled tensor never exists.
    public static func backwardData(kernel: UnsafePointer<Float>, dOutput dy: TensorView, dInput dx: Concatenation,
                                    work: UnsafeMutablePointer<Float>, workCount: Int,
                                    kernelBudget: Int = defaultKernelBudget, on pool: KernelThreads) {
        precondition(dx.batch == dy.batch && dx.height == dy.height && dx.width == dy.width)
        let (ci, co) = (dx.channels, dy.channels)
        let threads = usableThreads(inChannels: ci, outChannels: co, workCount: workCount, kernelBudget: kernelBudget,
                                    pool: pool)
        let u = work
        let blockStart = blocks(work, inChannels: ci, outChannels: co, threads: threads, kernelBudget: kernelBudget)
        // Sliced by input channels: each slice of dx from all of dy.
        for slice in slices(ci, against: co, kernelBudget: kernelBudget) {
            let sc = slice.count
            transformKernel(kernel, inChannels: ci, outChannels: co, rows: slice, columns: 0..<co, into: u, on: pool)
            let dxSlice = dx.channels(slice)
            // The roles swap: the block's "input" side holds dy (co channels), its output dx.
            runBlocks(batch: dy.batch, height: dy.height, width: dy.width, ci: co, co: ci, threads: threads, pool: pool,
                      blocks: blockStart) { tiles, block, _ in
                let v = block, m = block + 16 * tiles.count * co, zero = m + 16 * tiles.count * sc
                inputTransform(Concatenation(dy), tiles: tiles, zero: zero, into: v)
                for i in 0..<4 {
                    for j in 0..<4 {
                        let xi = 4 * i + j, turned = 4 * turn(i) + turn(j)
                        // M[ξ] (tiles x in) = V[ξ] (tiles x out) x U[p(ξ)]^T (out x in).
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                                    Int32(tiles.count), Int32(sc), Int32(co),
                                    1, v + xi * co, Int32(16 * co), u + turned * sc * co, Int32(co),
                                    0, m + xi * tiles.count * sc, Int32(sc))
                    }
                }
                outputTransform(m, tiles: tiles, into: dxSlice, bias: nil, activation: .linear)
            }
        }
    }

    /// Turns `dOutput` (dL/dy on entry) into dL/d(pre-activation) in place and accumulates
    /// dL/dkernel and dL/dbias.
    public static func backwardWeights(input x: TensorView, output y: TensorView, activation: Activation,
                                       dOutput dy: TensorView, dKernel: UnsafeMutablePointer<Float>,
                                       dBias: UnsafeMutablePointer<Float>,
                                       work: UnsafeMutablePointer<Float>, workCount: Int,
                                       kernelBudget: Int = defaultKernelBudget, on pool: KernelThreads) {
        backwardWeights(input: Concatenation(x), output: y, activation: activation, dOutput: dy, dKernel: dKernel,
                        dBias: dBias, work: work, workCount: workCount, kernelBudget: kernelBudget, on: pool)
    }

    /// The same for a convolution of a concatenation.
    public static func backwardWeights(input x: Concatenation, output y: TensorView, activation: Activation,
                                       dOutput dy: TensorView, dKernel: UnsafeMutablePointer<Float>,
                                       dBias: UnsafeMutablePointer<Float>,
                                       work: UnsafeMutablePointer<Float>, workCount: Int,
                                       kernelBudget: Int = defaultKernelBudget, on pool: KernelThreads) {
        precondition(x.batch == dy.batch && x.height == dy.height && x.width == dy.width)
        let (ci, co) = (x.channels, dy.channels)
        let threads = usableThreads(inChannels: ci, outChannels: co, workCount: workCount, kernelBudget: kernelBudget,
                                    pool: pool)
        let blockStart = blocks(work, inChannels: ci, outChannels: co, threads: threads, kernelBudget: kernelBudget)
        let byOutputs = splitsOutputChannels(outChannels: co, threads: threads)
        // Sliced by output channels: each slice's kernel gradient from all of x.
        for slice in slices(co, against: ci, kernelBudget: kernelBudget) {
            let part = KernelSlice(dKernel: dKernel, inChannels: ci, outChannels: co, columns: slice)
            if byOutputs {
                backwardWeightsByOutputChannels(input: x, output: y.channels(slice), activation: activation,
                                                dOutput: dy.channels(slice), into: part, threads: threads, pool: pool,
                                                work: work, blocks: blockStart)
            } else {
                backwardWeightsByTiles(input: x, output: y.channels(slice), activation: activation,
                                       dOutput: dy.channels(slice), into: part, threads: threads, pool: pool,
                                       work: work, blocks: blockStart)
            }
        }
        Bias.accumulateGradient(dy, into: dBias, on: pool)  // dy is dL/d(pre-activation) now
    }

    /// The output channels `columns` of a kernel gradient `(3, 3, in, out)`.
    struct KernelSlice {
        let dKernel: UnsafeMutablePointer<Float>
        let inChannels: Int, outChannels: Int
        let columns: Range<Int>
    }

    /// `backwardWeights` for one slice with the threads splitting the tiles: each thread sums
    /// `V^T dM` into a dU of its own, reduced into thread 0's at the end.
    static func backwardWeightsByTiles(input x: Concatenation, output y: TensorView, activation: Activation,
                                       dOutput dy: TensorView, into part: KernelSlice,
                                       threads: Int, pool: KernelThreads,
                                       work: UnsafeMutablePointer<Float>, blocks: UnsafeMutablePointer<Float>) {
        let (ci, sc) = (x.channels, dy.channels)
        let kernelCount = 16 * ci * sc
        let used = runBlocks(batch: x.batch, height: x.height, width: x.width, ci: ci, co: part.outChannels,
                             threads: threads, pool: pool, blocks: blocks, start: { thread in
                                 (work + thread * kernelCount).update(repeating: 0, count: kernelCount)
                             }) { tiles, block, thread in
            let du = work + thread * kernelCount
            let v = block, m = block + 16 * tiles.count * ci, zero = m + 16 * tiles.count * sc
            inputTransform(x, tiles: tiles, zero: zero, into: v)
            gradientTransform(dy, output: y, activation: activation, tiles: tiles, zero: zero, into: m)
            for xi in 0..<16 {
                // dU[ξ] (in x out) += V[ξ]^T (in x tiles) x dM[ξ] (tiles x out).
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                            Int32(ci), Int32(sc), Int32(tiles.count),
                            1, v + xi * ci, Int32(16 * ci), m + xi * sc, Int32(16 * sc),
                            1, du + xi * ci * sc, Int32(sc))
            }
        }
        // Sum the threads' dU into thread 0's, then dK += G^T dU G, split by input channels.
        let sumParts = min(threads, ci)
        pool.forEach(sumParts) { p in
            let rows = KernelThreads.range(p, of: sumParts, count: ci)
            for xi in 0..<16 {
                let target = work + xi * ci * sc + rows.lowerBound * sc
                for thread in 1..<max(1, used) {
                    add(work + thread * kernelCount + xi * ci * sc + rows.lowerBound * sc,
                        into: target, count: rows.count * sc)
                }
            }
            kernelGradient(work, rows: rows, into: part)
        }
    }

    /// `backwardWeights` for one slice with the threads splitting its output channels: every
    /// thread goes through every tile, transforming its whole input patch and its part of the
    /// output gradient, and adds `V^T dM` into its columns of the one dU.
    static func backwardWeightsByOutputChannels(input x: Concatenation, output y: TensorView, activation: Activation,
                                                dOutput dy: TensorView, into part: KernelSlice,
                                                threads: Int, pool: KernelThreads,
                                                work: UnsafeMutablePointer<Float>, blocks: UnsafeMutablePointer<Float>) {
        let (ci, sc) = (x.channels, dy.channels)
        let du = work
        let tiling = Tiling(height: x.height, width: x.width)
        let total = x.batch * tiling.perImage
        let perBlock = blockTiles(inChannels: ci, outChannels: part.outChannels)
        let blockSize = blockCount(inChannels: ci, outChannels: part.outChannels)
        let parts = min(threads, sc)
        pool.forEach(parts) { p in
            let mine = KernelThreads.range(p, of: parts, count: sc)
            let mc = mine.count
            let dyPart = dy.channels(mine), yPart = y.channels(mine)
            // Zero this thread's columns of dU.
            for row in 0..<(16 * ci) { (du + row * sc + mine.lowerBound).update(repeating: 0, count: mc) }
            let block = blocks + p * blockSize
            var t0 = 0
            while t0 < total {
                let t1 = min(t0 + perBlock, total)
                let tiles = TileRange(tiling: tiling, range: t0..<t1), t = tiles.count
                let v = block, m = block + 16 * t * ci, zero = m + 16 * t * mc
                inputTransform(x, tiles: tiles, zero: zero, into: v)
                gradientTransform(dyPart, output: yPart, activation: activation, tiles: tiles, zero: zero, into: m)
                for xi in 0..<16 {
                    // dU[ξ][:, mine] (in x mc) += V[ξ]^T (in x tiles) x dM[ξ] (tiles x mc).
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                                Int32(ci), Int32(mc), Int32(t),
                                1, v + xi * ci, Int32(16 * ci), m + xi * mc, Int32(16 * mc),
                                1, du + xi * ci * sc + mine.lowerBound, Int32(sc))
                }
                t0 = t1
            }
        }
        let rowParts = min(threads, ci)
        pool.forEach(rowParts) { p in
            kernelGradient(du, rows: KernelThreads.range(p, of: rowParts, count: ci), into: part)
        }
    }

    /// p: the position of a transformed row or column once the kernel is turned by 180 degrees.
    @inline(__always) static func turn(_ i: Int) -> Int { i == 0 ? 3 : i == 3 ? 0 : i }

    // MARK: Blocks and threads

    /// Splits the tiles of `batch` images into one contiguous range per thread and calls
    /// `body(tiles, block, thread)` on blocks of at most `blockTiles` tiles, each thread with its
    /// own block of workspace at `blocks` (after the kernel-sized regions). Returns the number of
    /// threads that ran (after `start(thread)` once each).
    @discardableResult
    static func runBlocks(batch: Int, height: Int, width: Int, ci: Int, co: Int, threads: Int, pool: KernelThreads,
                          blocks: UnsafeMutablePointer<Float>, start: (Int) -> Void = { _ in },
                          _ body: (TileRange, UnsafeMutablePointer<Float>, Int) -> Void) -> Int {
        let tiling = Tiling(height: height, width: width)
        let total = batch * tiling.perImage
        let perBlock = blockTiles(inChannels: ci, outChannels: co)
        let parts = max(1, min(threads, (total + 15) / 16))
        let blockSize = blockCount(inChannels: ci, outChannels: co)
        pool.forEach(parts) { part in
            start(part)
            let mine = KernelThreads.range(part, of: parts, count: total)
            let block = blocks + part * blockSize
            var t0 = mine.lowerBound
            while t0 < mine.upperBound {
                let t1 = min(t0 + perBlock, mine.upperBound)
                body(TileRange(tiling: tiling, range: t0..<t1), block, part)
                t0 = t1
            }
        }
        return parts
    }

    /// A run of consecutive tiles (image-major, then tile rows, then tile columns).
    struct TileRange {
        let tiling: Tiling
        let range: Range<Int>
        var count: Int { range.count }
    }

    // MARK: Transforms

    /// Calls `body(k, n, oy, ox)` for the k-th tile of `tiles`: image n, output origin (oy, ox).
    @inline(__always)
    static func forEachTile(_ tiles: TileRange, _ body: (Int, Int, Int, Int) -> Void) {
        let tiling = tiles.tiling
        var n = tiles.range.lowerBound / tiling.perImage
        let rest = tiles.range.lowerBound % tiling.perImage
        var ty = rest / tiling.tilesX, tx = rest % tiling.tilesX
        for k in 0..<tiles.count {
            body(k, n, 2 * ty, 2 * tx)
            tx += 1
            if tx == tiling.tilesX {
                tx = 0
                ty += 1
                if ty == tiling.tilesY { ty = 0; n += 1 }
            }
        }
    }

    /// V for each tile: `B^T d B` of its 4x4 input patch (rows oy-1...oy+2, columns ox-1...ox+2,
    /// zero outside), stored tile by tile as 16 rows of `x.channels` (ξ-major), each part of a
    /// concatenation into its own channels of the rows.
    static func inputTransform(_ x: Concatenation, tiles: TileRange, zero: UnsafeMutablePointer<Float>,
                               into v: UnsafeMutablePointer<Float>) {
        let ci = x.channels, (h, w) = (x.height, x.width)
        zero.update(repeating: 0, count: max(x.first.channels, x.second?.channels ?? 0))
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 16) { d in
            forEachTile(tiles) { k, n, oy, ox in
                var offset = 0
                for part in 0..<x.parts {
                    let view = part == 0 ? x.first : x.second!
                    let upsampled = part == 0 && x.firstUpsampled
                    for i in 0..<4 {
                        let iy = oy - 1 + i
                        for j in 0..<4 {
                            let ix = ox - 1 + j
                            if iy < 0 || iy >= h || ix < 0 || ix >= w {
                                d[4 * i + j] = UnsafePointer(zero)
                            } else if upsampled {
                                d[4 * i + j] = UnsafePointer(view.pixel((n * view.height + (iy >> 1)) * view.width + (ix >> 1)))
                            } else {
                                d[4 * i + j] = UnsafePointer(view.pixel((n * h + iy) * w + ix))
                            }
                        }
                    }
                    transformPatch(d.baseAddress!, channels: view.channels, into: v + k * 16 * ci + offset, xiStride: ci)
                    offset += view.channels
                }
            }
        }
    }

    /// dM for each tile: `A dY A^T` of its 2x2 patch of dL/d(pre-activation) (zero outside),
    /// stored as V. `dy` holds dL/dy on entry: each pixel (every one belongs to exactly one
    /// tile) is first turned into dL/d(pre-activation) in place, from the layer's output `y`.
    static func gradientTransform(_ dy: TensorView, output y: TensorView, activation: Activation, tiles: TileRange,
                                  zero: UnsafeMutablePointer<Float>, into m: UnsafeMutablePointer<Float>) {
        let c = dy.channels, (h, w) = (dy.height, dy.width)
        zero.update(repeating: 0, count: c)
        withUnsafeTemporaryAllocation(of: UnsafePointer<Float>.self, capacity: 4) { g in
            forEachTile(tiles) { k, n, oy, ox in
                for r in 0..<2 {
                    for s in 0..<2 {
                        let (py, px) = (oy + r, ox + s)
                        guard py < h && px < w else {
                            g[2 * r + s] = UnsafePointer(zero)
                            continue
                        }
                        let p = (n * h + py) * w + px
                        let d = dy.pixel(p), out = y.pixel(p)
                        switch activation {
                        case .linear: break
                        case .relu: reluMask(d, by: out, count: c)
                        case .sigmoid: for i in 0..<c { d[i] *= out[i] * (1 - out[i]) }
                        }
                        g[2 * r + s] = UnsafePointer(d)
                    }
                }
                expandGradient(g.baseAddress!, channels: c, into: m + k * 16 * c, xiStride: c)
            }
        }
    }

    /// Writes each tile's 2x2 outputs `A^T M A` (+ bias, activation) into `y` (those inside it),
    /// M stored position by position (`M[ξ]` a tiles x channels matrix of its own),
    /// each part of a concatenation from its channels of M; an upsampled part gets the sum of
    /// the four (linear only), at the tile's pixel of the low-resolution view.
    static func outputTransform(_ m: UnsafeMutablePointer<Float>, tiles: TileRange, into y: Concatenation,
                                bias: UnsafePointer<Float>?, activation: Activation) {
        let c = y.channels, (h, w) = (y.height, y.width)
        let relu = activation == .relu
        precondition(!y.firstUpsampled || (bias == nil && activation == .linear && h % 2 == 0 && w % 2 == 0))
        forEachTile(tiles) { k, n, oy, ox in
            var offset = 0
            for part in 0..<y.parts {
                let view = part == 0 ? y.first : y.second!
                let src = m + k * c + offset
                offset += view.channels
                if part == 0 && y.firstUpsampled {
                    collapseSum(src, channels: view.channels, xiStride: tiles.count * c,
                                into: view.pixel((n * view.height + (oy >> 1)) * view.width + (ox >> 1)))
                    continue
                }
                let y00 = view.pixel((n * h + oy) * w + ox)
                let right = ox + 1 < w, down = oy + 1 < h
                let y01 = right ? y00 + view.pixelStride : nil
                let y10 = down ? y00 + w * view.pixelStride : nil
                let y11 = right && down ? y00 + (w + 1) * view.pixelStride : nil
                collapseTile(src, channels: view.channels, xiStride: tiles.count * c, bias: bias.map { $0 + offset - view.channels },
                             relu: relu, y00, y01, y10, y11)
                if activation == .sigmoid {
                    let cv = view.channels
                    for i in 0..<cv { y00[i] = logistic(y00[i]) }
                    if let y01 { for i in 0..<cv { y01[i] = logistic(y01[i]) } }
                    if let y10 { for i in 0..<cv { y10[i] = logistic(y10[i]) } }
                    if let y11 { for i in 0..<cv { y11[i] = logistic(y11[i]) } }
                }
            }
        }
    }

    typealias F8 = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>, _ i: Int) -> F8 {
        UnsafeRawPointer(p + i).loadUnaligned(as: F8.self)
    }
    @inline(__always) static func store(_ value: F8, _ p: UnsafeMutablePointer<Float>, _ i: Int) {
        UnsafeMutableRawPointer(p + i).storeBytes(of: value, as: F8.self)
    }

    /// `B^T d B` for one patch: `d` holds 16 pixel pointers (row-major), the result 16 rows of
    /// `channels` floats.
    @inline(__always)
    static func transformPatch(_ d: UnsafePointer<UnsafePointer<Float>>, channels c: Int,
                               into v: UnsafeMutablePointer<Float>, xiStride xs: Int) {
        var i = 0
        while i + 8 <= c {
            transformPatch8(d, i, xs, v, load: load, store: store)
            i += 8
        }
        while i < c {
            transformPatch8(d, i, xs, v, load: { p, i in F8(p[i], 0, 0, 0, 0, 0, 0, 0) },
                            store: { value, p, i in p[i] = value[0] })
            i += 1
        }
    }

    @inline(__always)
    static func transformPatch8(_ d: UnsafePointer<UnsafePointer<Float>>, _ i: Int, _ xs: Int,
                                _ v: UnsafeMutablePointer<Float>,
                                load: (UnsafePointer<Float>, Int) -> F8,
                                store: (F8, UnsafeMutablePointer<Float>, Int) -> Void) {
        // Row r of t = B^T d, entry j (from column j of d), then V's row r = t_r B.
        @inline(__always) func t(_ r: Int, _ j: Int) -> F8 {
            switch r {
            case 0: return load(d[j], i) - load(d[8 + j], i)
            case 1: return load(d[4 + j], i) + load(d[8 + j], i)
            case 2: return load(d[8 + j], i) - load(d[4 + j], i)
            default: return load(d[4 + j], i) - load(d[12 + j], i)
            }
        }
        for r in 0..<4 {
            let a = t(r, 0), b = t(r, 1), e = t(r, 2), f = t(r, 3)
            store(a - e, v + (4 * r) * xs, i)
            store(b + e, v + (4 * r + 1) * xs, i)
            store(e - b, v + (4 * r + 2) * xs, i)
            store(b - f, v + (4 * r + 3) * xs, i)
        }
    }

    /// `A g A^T` for one 2x2 gradient patch (`g`: 4 pixel pointers) into 16 rows of `channels`.
    @inline(__always)
    static func expandGradient(_ g: UnsafePointer<UnsafePointer<Float>>, channels c: Int,
                               into m: UnsafeMutablePointer<Float>, xiStride xs: Int) {
        var i = 0
        while i + 8 <= c {
            expandGradient8(g, i, xs, m, load: load, store: store)
            i += 8
        }
        while i < c {
            expandGradient8(g, i, xs, m, load: { p, i in F8(p[i], 0, 0, 0, 0, 0, 0, 0) },
                            store: { value, p, i in p[i] = value[0] })
            i += 1
        }
    }

    @inline(__always)
    static func expandGradient8(_ g: UnsafePointer<UnsafePointer<Float>>, _ i: Int, _ xs: Int,
                                _ m: UnsafeMutablePointer<Float>,
                                load: (UnsafePointer<Float>, Int) -> F8,
                                store: (F8, UnsafeMutablePointer<Float>, Int) -> Void) {
        // Rows of A: (1, 0), (1, 1), (1, -1), (0, -1).
        let g00 = load(g[0], i), g01 = load(g[1], i), g10 = load(g[2], i), g11 = load(g[3], i)
        // u = A g (4x2), then A u^T per row.
        @inline(__always) func row(_ r: Int, _ a: F8, _ b: F8) {
            store(a, m + (4 * r) * xs, i)
            store(a + b, m + (4 * r + 1) * xs, i)
            store(a - b, m + (4 * r + 2) * xs, i)
            store(-b, m + (4 * r + 3) * xs, i)
        }
        row(0, g00, g01)
        row(1, g00 + g10, g01 + g11)
        row(2, g00 - g10, g01 - g11)
        row(3, -g10, -g11)
    }

    /// `A^T M A` for one tile (+ bias, ReLU), written to the outputs that exist.
    @inline(__always)
    static func collapseTile(_ m: UnsafePointer<Float>, channels c: Int, xiStride xs: Int,
                             bias: UnsafePointer<Float>?, relu: Bool,
                             _ y00: UnsafeMutablePointer<Float>, _ y01: UnsafeMutablePointer<Float>?,
                             _ y10: UnsafeMutablePointer<Float>?, _ y11: UnsafeMutablePointer<Float>?) {
        var i = 0
        while i + 8 <= c {
            collapseTile8(m, i, xs, bias, relu, y00, y01, y10, y11, load: load, store: store)
            i += 8
        }
        while i < c {
            collapseTile8(m, i, xs, bias, relu, y00, y01, y10, y11, load: { p, i in F8(p[i], 0, 0, 0, 0, 0, 0, 0) },
                          store: { value, p, i in p[i] = value[0] })
            i += 1
        }
    }

    @inline(__always)
    static func collapseTile8(_ m: UnsafePointer<Float>, _ i: Int, _ xs: Int, _ bias: UnsafePointer<Float>?,
                              _ relu: Bool,
                              _ y00: UnsafeMutablePointer<Float>, _ y01: UnsafeMutablePointer<Float>?,
                              _ y10: UnsafeMutablePointer<Float>?, _ y11: UnsafeMutablePointer<Float>?,
                              load: (UnsafePointer<Float>, Int) -> F8,
                              store: (F8, UnsafeMutablePointer<Float>, Int) -> Void) {
        // s = A^T M (2x4): column j gives (m0j + m1j + m2j, m1j - m2j - m3j); y = s A (2x2).
        @inline(__always) func s0(_ j: Int) -> F8 { load(m + j * xs, i) + load(m + (4 + j) * xs, i) + load(m + (8 + j) * xs, i) }
        @inline(__always) func s1(_ j: Int) -> F8 { load(m + (4 + j) * xs, i) - load(m + (8 + j) * xs, i) - load(m + (12 + j) * xs, i) }
        @inline(__always) func put(_ value: F8, _ p: UnsafeMutablePointer<Float>?) {
            guard let p else { return }
            store(relu ? value.replacing(with: 0, where: value .< 0) : value, p, i)
        }
        let b = bias.map { load($0, i) } ?? F8()
        let a0 = s0(0), a1 = s0(1), a2 = s0(2), a3 = s0(3)
        put(a0 + a1 + a2 + b, y00)
        put(a1 - a2 - a3 + b, y01)
        let c0 = s1(0), c1 = s1(1), c2 = s1(2), c3 = s1(3)
        put(c0 + c1 + c2 + b, y10)
        put(c1 - c2 - c3 + b, y11)
    }

    /// The sum of a tile's four outputs `A^T M A` (the adjoint of nearest upsampling, for the
    /// gradient of the low-resolution tensor): `s0(0) + 2 s0(1) - s0(3) + s1(0) + 2 s1(1) - s1(3)`
    /// in `collapseTile8`'s terms.
    @inline(__always)
    static func collapseSum(_ m: UnsafePointer<Float>, channels c: Int, xiStride xs: Int,
                            into out: UnsafeMutablePointer<Float>) {
        var i = 0
        while i + 8 <= c {
            collapseSum8(m, i, xs, out, load: load, store: store)
            i += 8
        }
        while i < c {
            collapseSum8(m, i, xs, out, load: { p, i in F8(p[i], 0, 0, 0, 0, 0, 0, 0) },
                         store: { value, p, i in p[i] = value[0] })
            i += 1
        }
    }

    @inline(__always)
    static func collapseSum8(_ m: UnsafePointer<Float>, _ i: Int, _ xs: Int, _ out: UnsafeMutablePointer<Float>,
                             load: (UnsafePointer<Float>, Int) -> F8,
                             store: (F8, UnsafeMutablePointer<Float>, Int) -> Void) {
        // Column j of M contributes (row sums of A^T A): m0j + 2 m1j - m3j... per column weight.
        // s0(j) + s1(j) = m0j + 2 m1j - m3j; the columns then weigh 1, 2, 0, -1 likewise.
        @inline(__always) func column(_ j: Int) -> F8 {
            load(m + j * xs, i) + 2 * load(m + (4 + j) * xs, i) - load(m + (12 + j) * xs, i)
        }
        store(column(0) + 2 * column(1) - column(3), out, i)
    }

    // MARK: Kernel transforms

    /// `U[ξ] = G g G^T` for the (in, out) pairs of `rows` x `columns` of a kernel
    /// `(3, 3, in, out)`: `u` is 16 matrices of rows x columns, row-major. Vectorised along
    /// output channels (contiguous in both layouts).
    static func transformKernel(_ kernel: UnsafePointer<Float>, inChannels ci: Int, outChannels co: Int,
                                rows: Range<Int>, columns: Range<Int>, into u: UnsafeMutablePointer<Float>,
                                on pool: KernelThreads) {
        let (rc, cc) = (rows.count, columns.count)
        let parts = min(pool.count, rc)
        let plane = ci * co, uPlane = rc * cc
        pool.forEach(parts) { part in
            for r in KernelThreads.range(part, of: parts, count: rc) {
                let g = kernel + (rows.lowerBound + r) * co + columns.lowerBound, out = u + r * cc
                var o = 0
                while o < cc {
                    if o + 8 <= cc {
                        transformKernel8(g, o, plane, out, uPlane, load: load, store: store)
                        o += 8
                    } else {
                        transformKernel8(g, o, plane, out, uPlane, load: { p, i in F8(p[i], 0, 0, 0, 0, 0, 0, 0) },
                                         store: { value, p, i in p[i] = value[0] })
                        o += 1
                    }
                }
            }
        }
    }

    /// G g G^T for 8 (or, with scalar `load`/`store`, 1) output channels from `o`: g's 9 entries
    /// (ky, kx row-major) `plane` apart, U's 16 entries `uPlane` apart.
    @inline(__always)
    static func transformKernel8(_ g: UnsafePointer<Float>, _ o: Int, _ plane: Int, _ u: UnsafeMutablePointer<Float>,
                                 _ uPlane: Int,
                                 load: (UnsafePointer<Float>, Int) -> F8,
                                 store: (F8, UnsafeMutablePointer<Float>, Int) -> Void) {
        // t = G g (4x3), row by row of g's columns; then U = t G^T.
        func row(_ r: (F8, F8, F8), _ xi: Int) {
            let (a, b, c) = r
            store(a, u + xi * uPlane, o)
            store(0.5 * (a + b + c), u + (xi + 1) * uPlane, o)
            store(0.5 * (a - b + c), u + (xi + 2) * uPlane, o)
            store(c, u + (xi + 3) * uPlane, o)
        }
        let g0 = (load(g, o), load(g + plane, o), load(g + 2 * plane, o))
        let g1 = (load(g + 3 * plane, o), load(g + 4 * plane, o), load(g + 5 * plane, o))
        let g2 = (load(g + 6 * plane, o), load(g + 7 * plane, o), load(g + 8 * plane, o))
        row(g0, 0)
        row((0.5 * (g0.0 + g1.0 + g2.0), 0.5 * (g0.1 + g1.1 + g2.1), 0.5 * (g0.2 + g1.2 + g2.2)), 4)
        row((0.5 * (g0.0 - g1.0 + g2.0), 0.5 * (g0.1 - g1.1 + g2.1), 0.5 * (g0.2 - g1.2 + g2.2)), 8)
        row(g2, 12)
    }

    /// `dK[ky][kx][in][out] += (G^T dU G)[ky][kx]` for the input channels `rows` and the
    /// slice's output channels (dU: 16 matrices of in x slice), vectorised along output channels.
    static func kernelGradient(_ du: UnsafePointer<Float>, rows: Range<Int>, into part: KernelSlice) {
        let (ci, co, sc) = (part.inChannels, part.outChannels, part.columns.count)
        let plane = ci * co, duPlane = ci * sc
        for c in rows {
            let e = du + c * sc, out = part.dKernel + c * co + part.columns.lowerBound
            var o = 0
            while o < sc {
                if o + 8 <= sc {
                    kernelGradient8(e, o, duPlane, out, plane, load: load, store: store)
                    o += 8
                } else {
                    kernelGradient8(e, o, duPlane, out, plane, load: { p, i in F8(p[i], 0, 0, 0, 0, 0, 0, 0) },
                                    store: { value, p, i in p[i] = value[0] })
                    o += 1
                }
            }
        }
    }

    @inline(__always)
    static func kernelGradient8(_ e: UnsafePointer<Float>, _ o: Int, _ ePlane: Int, _ dk: UnsafeMutablePointer<Float>,
                                _ plane: Int,
                                load: (UnsafePointer<Float>, Int) -> F8,
                                store: (F8, UnsafeMutablePointer<Float>, Int) -> Void) {
        // G^T's rows: (1, 1/2, 1/2, 0), (0, 1/2, -1/2, 0), (0, 1/2, 1/2, 1).
        @inline(__always) func reduce(_ d0: F8, _ d1: F8, _ d2: F8, _ d3: F8) -> (F8, F8, F8) {
            (d0 + 0.5 * (d1 + d2), 0.5 * (d1 - d2), 0.5 * (d1 + d2) + d3)
        }
        @inline(__always) func column(_ j: Int) -> (F8, F8, F8) {
            reduce(load(e + j * ePlane, o), load(e + (4 + j) * ePlane, o),
                   load(e + (8 + j) * ePlane, o), load(e + (12 + j) * ePlane, o))
        }
        // t = G^T dU (3x4), then G^T t^T per row: dK[ky][kx].
        let c0 = column(0), c1 = column(1), c2 = column(2), c3 = column(3)
        @inline(__always) func accumulate(_ ky: Int, _ t0: F8, _ t1: F8, _ t2: F8, _ t3: F8) {
            let (k0, k1, k2) = reduce(t0, t1, t2, t3)
            let p = dk + 3 * ky * plane
            store(load(p, o) + k0, p, o)
            store(load(p + plane, o) + k1, p + plane, o)
            store(load(p + 2 * plane, o) + k2, p + 2 * plane, o)
        }
        accumulate(0, c0.0, c1.0, c2.0, c3.0)
        accumulate(1, c0.1, c1.1, c2.1, c3.1)
        accumulate(2, c0.2, c1.2, c2.2, c3.2)
    }

    /// `target[i] += source[i]`.
    @inline(__always)
    static func add(_ source: UnsafePointer<Float>, into target: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { target[i] += source[i] }
    }
}
