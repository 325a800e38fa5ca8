import COpenBLAS

/// 3x3 "same" convolution, stride 1, with bias and a fused activation, as Keras'
/// `Conv2D(f, (3, 3), padding="same")`: im2col, then one `cblas_sgemm` per chunk of images.
///
/// Kernel layout `(kh, kw, in, out)` (Keras), read as the `[9 * in, out]` matrix of the GEMM.
/// The im2col buffer (`work`) is allocated once by the caller; `workspace(...)` says how large.
/// Gradients are accumulated (`+=`) into `dKernel` and `dBias`; the caller zeroes them once per step.
public enum Conv3x3 {
    /// Floats of `work` needed for `imagesPerChunk` images of `height x width` with `inChannels`.
    public static func workspace(height: Int, width: Int, inChannels: Int, imagesPerChunk: Int) -> Int {
        imagesPerChunk * height * width * 9 * inChannels
    }

    /// Images processed per GEMM so that the im2col matrix fits in `workCount` floats.
    static func chunk(_ x: TensorView, workCount: Int) -> Int {
        let perImage = x.height * x.width * 9 * x.channels
        precondition(workCount >= perImage, "im2col workspace too small: \(workCount) < \(perImage)")
        return min(x.batch, workCount / perImage)
    }

    /// `output = activation(conv(input, kernel) + bias)`; `output` may be a channel slice.
    /// With `threads.count > 1` the images of each chunk are split across the threads.
    public static func forward(input x: TensorView, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               output y: TensorView, activation: Activation,
                               work: UnsafeMutablePointer<Float>, workCount: Int, on threads: KernelThreads) {
        precondition(x.batch == y.batch && x.height == y.height && x.width == y.width)
        let k = 9 * x.channels
        let chunk = chunk(x, workCount: workCount)
        let perImage = x.height * x.width
        var n0 = 0
        while n0 < x.batch {
            let n = min(chunk, x.batch - n0)
            let parts = min(threads.count, n)
            threads.forEach(parts) { part in
                let r = KernelThreads.range(part, of: parts, count: n)
                let xi = x.images((n0 + r.lowerBound)..<(n0 + r.upperBound))
                let yi = y.images((n0 + r.lowerBound)..<(n0 + r.upperBound))
                let col = work + r.lowerBound * perImage * k
                im2col(xi, into: col)
                // Start from the bias, then C = col x K + C.
                for p in 0..<yi.pixels { yi.pixel(p).update(from: bias, count: y.channels) }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                            Int32(yi.pixels), Int32(y.channels), Int32(k),
                            1, col, Int32(k), kernel, Int32(y.channels),
                            1, yi.base, Int32(y.pixelStride))
                activation.apply(yi)
            }
            n0 += n
        }
    }

    /// Backward pass. `dOutput` holds dL/dy on entry and is overwritten with dL/d(pre-activation).
    /// Accumulates dL/dkernel and dL/dbias; writes (overwrites) dL/dinput when `dInput` is given.
    public static func backward(input x: TensorView, kernel: UnsafePointer<Float>,
                                output y: TensorView, activation: Activation, dOutput dy: TensorView,
                                dInput dx: TensorView?, dKernel: UnsafeMutablePointer<Float>,
                                dBias: UnsafeMutablePointer<Float>,
                                work: UnsafeMutablePointer<Float>, workCount: Int, on threads: KernelThreads) {
        backwardWeights(input: x, output: y, activation: activation, dOutput: dy, dKernel: dKernel, dBias: dBias,
                        work: work, workCount: workCount, on: threads)
        if let dx {
            backwardData(kernel: kernel, dOutput: dy, dInput: dx, work: work, workCount: workCount, on: threads)
        }
    }

    /// The first half of `backward`: turns `dOutput` into dL/d(pre-activation) in place and
    /// accumulates dL/dkernel (`col^T x dy`, im2col of the input) and dL/dbias. With
    /// `threads.count > 1`, im2col is split by images and the GEMM by output channels (each
    /// thread owns its columns of dL/dkernel: no reduction).
    public static func backwardWeights(input x: TensorView, output y: TensorView, activation: Activation,
                                       dOutput dy: TensorView, dKernel: UnsafeMutablePointer<Float>,
                                       dBias: UnsafeMutablePointer<Float>,
                                       work: UnsafeMutablePointer<Float>, workCount: Int, on threads: KernelThreads) {
        let images = min(threads.count, dy.batch)
        threads.forEach(images) { part in
            let r = KernelThreads.range(part, of: images, count: dy.batch)
            activation.backward(output: y.images(r), gradient: dy.images(r))
        }
        Bias.accumulateGradient(dy, into: dBias, on: threads)
        let k = 9 * x.channels
        let chunk = chunk(x, workCount: workCount)
        let perImage = x.height * x.width
        var n0 = 0
        while n0 < x.batch {
            let n = min(chunk, x.batch - n0)
            let xi = x.images(n0..<(n0 + n)), dyi = dy.images(n0..<(n0 + n))
            let parts = min(threads.count, n)
            threads.forEach(parts) { part in
                let r = KernelThreads.range(part, of: parts, count: n)
                im2col(xi.images(r), into: work + r.lowerBound * perImage * k)
            }
            // dK[k, out] += col^T [k, rows] x dy [rows, out], by slices of output channels.
            let slices = min(threads.count, y.channels)
            threads.forEach(slices) { part in
                let c = KernelThreads.range(part, of: slices, count: y.channels)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                            Int32(k), Int32(c.count), Int32(xi.pixels),
                            1, work, Int32(k), dyi.base + c.lowerBound, Int32(dy.pixelStride),
                            1, dKernel + c.lowerBound, Int32(y.channels))
            }
            n0 += n
        }
    }

    /// The second half of `backward` (after `backwardWeights`, which leaves dL/d(pre-activation)
    /// in `dOutput`): overwrites `dInput` with `col2im(dy x K^T)`, split by images across threads.
    public static func backwardData(kernel: UnsafePointer<Float>, dOutput dy: TensorView, dInput dx: TensorView,
                                    work: UnsafeMutablePointer<Float>, workCount: Int, on threads: KernelThreads) {
        let k = 9 * dx.channels
        let chunk = chunk(dx, workCount: workCount)
        let perImage = dx.height * dx.width
        var n0 = 0
        while n0 < dx.batch {
            let n = min(chunk, dx.batch - n0)
            let parts = min(threads.count, n)
            threads.forEach(parts) { part in
                let r = KernelThreads.range(part, of: parts, count: n)
                let images = (n0 + r.lowerBound)..<(n0 + r.upperBound)
                let dyi = dy.images(images)
                let col = work + r.lowerBound * perImage * k
                // dcol [rows, k] = dy [rows, out] x K^T [out, k], then scatter-add into dx.
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                            Int32(dyi.pixels), Int32(k), Int32(dy.channels),
                            1, dyi.base, Int32(dy.pixelStride), kernel, Int32(dy.channels),
                            0, col, Int32(k))
                col2im(col, into: dx.images(images))
            }
            n0 += n
        }
    }

    /// Row p of `col` holds the 3x3 neighbourhood of pixel p, `(ky, kx, c)` order, zeros outside.
    static func im2col(_ x: TensorView, into col: UnsafeMutablePointer<Float>) {
        let (h, w, c) = (x.height, x.width, x.channels)
        let rowLength = 9 * c
        for n in 0..<x.batch {
            for oy in 0..<h {
                for ox in 0..<w {
                    var dst = col + ((n * h + oy) * w + ox) * rowLength
                    for ky in -1...1 {
                        let iy = oy + ky
                        for kx in -1...1 {
                            let ix = ox + kx
                            if iy < 0 || iy >= h || ix < 0 || ix >= w {
                                dst.update(repeating: 0, count: c)
                            } else {
                                dst.update(from: x.pixel((n * h + iy) * w + ix), count: c)
                            }
                            dst += c
                        }
                    }
                }
            }
        }
    }

    /// The adjoint of `im2col`: `dx` is overwritten with the sum of every row entry that read it.
    static func col2im(_ col: UnsafePointer<Float>, into dx: TensorView) {
        dx.fill(0)
        let (h, w, c) = (dx.height, dx.width, dx.channels)
        let rowLength = 9 * c
        for n in 0..<dx.batch {
            for oy in 0..<h {
                for ox in 0..<w {
                    var src = col + ((n * h + oy) * w + ox) * rowLength
                    for ky in -1...1 {
                        let iy = oy + ky
                        for kx in -1...1 {
                            let ix = ox + kx
                            if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                let d = dx.pixel((n * h + iy) * w + ix)
                                for i in 0..<c { d[i] += src[i] }
                            }
                            src += c
                        }
                    }
                }
            }
        }
    }
}

/// 1x1 convolution with bias and a fused activation (the U-Net's last layer: one output channel,
/// sigmoid). Kernel layout `(1, 1, in, out)`, the `[in, out]` matrix. One GEMM, no workspace.
public enum Conv1x1 {
    public static func forward(input x: TensorView, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               output y: TensorView, activation: Activation) {
        precondition(x.pixels == y.pixels)
        for p in 0..<y.pixels { y.pixel(p).update(from: bias, count: y.channels) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                    Int32(x.pixels), Int32(y.channels), Int32(x.channels),
                    1, x.base, Int32(x.pixelStride), kernel, Int32(y.channels),
                    1, y.base, Int32(y.pixelStride))
        activation.apply(y)
    }

    /// As `Conv3x3.backward`: `dOutput` becomes dL/d(pre-activation); kernel and bias gradients
    /// accumulate; `dInput` is overwritten.
    public static func backward(input x: TensorView, kernel: UnsafePointer<Float>,
                                output y: TensorView, activation: Activation, dOutput dy: TensorView,
                                dInput dx: TensorView?, dKernel: UnsafeMutablePointer<Float>,
                                dBias: UnsafeMutablePointer<Float>, on threads: KernelThreads) {
        activation.backward(output: y, gradient: dy)
        Bias.accumulateGradient(dy, into: dBias, on: threads)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                    Int32(x.channels), Int32(y.channels), Int32(x.pixels),
                    1, x.base, Int32(x.pixelStride), dy.base, Int32(dy.pixelStride),
                    1, dKernel, Int32(y.channels))
        if let dx {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                        Int32(x.pixels), Int32(x.channels), Int32(y.channels),
                        1, dy.base, Int32(dy.pixelStride), kernel, Int32(y.channels),
                        0, dx.base, Int32(dx.pixelStride))
        }
    }
}

/// 2x2 transposed convolution with stride 2 (Keras `Conv2DTranspose(f, (2, 2), strides=(2, 2),
/// padding="same")`): every input pixel paints its own 2x2 output block, so there is no overlap.
/// Kernel layout `(kh, kw, out, in)` (Keras), read as the `[4 * out, in]` matrix `K`:
/// `Y4 [pixels, 4 * out] = X [pixels, in] x K^T`, then each row is scattered to its block.
public enum ConvTranspose2x2 {
    public static func workspace(inputPixelsPerChunk: Int, outChannels: Int) -> Int {
        inputPixelsPerChunk * 4 * outChannels
    }

    static func chunk(_ x: TensorView, outChannels: Int, workCount: Int) -> Int {
        let perImage = x.height * x.width * 4 * outChannels
        precondition(workCount >= perImage, "transposed-convolution workspace too small")
        return min(x.batch, workCount / perImage)
    }

    /// With `threads.count > 1`, the images of each chunk are split across the threads (each
    /// its own rows of the workspace).
    public static func forward(input x: TensorView, kernel: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               output y: TensorView, work: UnsafeMutablePointer<Float>, workCount: Int,
                               on threads: KernelThreads) {
        precondition(y.height == 2 * x.height && y.width == 2 * x.width && x.batch == y.batch)
        let co = y.channels
        let chunk = chunk(x, outChannels: co, workCount: workCount)
        let perImage = x.height * x.width * 4 * co
        var n0 = 0
        while n0 < x.batch {
            let n = min(chunk, x.batch - n0)
            let parts = min(threads.count, n)
            threads.forEach(parts) { part in
                let r = KernelThreads.range(part, of: parts, count: n)
                let images = (n0 + r.lowerBound)..<(n0 + r.upperBound)
                let xi = x.images(images), out = work + r.lowerBound * perImage
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                            Int32(xi.pixels), Int32(4 * co), Int32(x.channels),
                            1, xi.base, Int32(x.pixelStride), kernel, Int32(x.channels),
                            0, out, Int32(4 * co))
                forEachBlock(xi, y.images(images)) { row, block, target in
                    let src = out + row * 4 * co + block * co
                    for c in 0..<co { target[c] = src[c] + bias[c] }
                }
            }
            n0 += n
        }
    }

    /// Accumulates dL/dkernel and dL/dbias; overwrites `dInput`. (Linear: no activation.) With
    /// `threads.count > 1`, the gathering and dL/dx are split by images, dL/dkernel by its
    /// rows (each thread owns its rows: no reduction).
    public static func backward(input x: TensorView, kernel: UnsafePointer<Float>, dOutput dy: TensorView,
                                dInput dx: TensorView, dKernel: UnsafeMutablePointer<Float>,
                                dBias: UnsafeMutablePointer<Float>,
                                work: UnsafeMutablePointer<Float>, workCount: Int, on threads: KernelThreads) {
        let co = dy.channels
        Bias.accumulateGradient(dy, into: dBias, on: threads)
        let chunk = chunk(x, outChannels: co, workCount: workCount)
        let perImage = x.height * x.width * 4 * co
        var n0 = 0
        while n0 < x.batch {
            let n = min(chunk, x.batch - n0)
            let xi = x.images(n0..<(n0 + n))
            let parts = min(threads.count, n)
            threads.forEach(parts) { part in
                let r = KernelThreads.range(part, of: parts, count: n)
                let images = (n0 + r.lowerBound)..<(n0 + r.upperBound)
                let rows = work + r.lowerBound * perImage
                forEachBlock(x.images(images), dy.images(images)) { row, block, source in
                    (rows + row * 4 * co + block * co).update(from: source, count: co)
                }
            }
            // dK [4 out, in] += dY4^T x X, by rows of dK.
            let slices = min(threads.count, 4 * co)
            threads.forEach(slices) { part in
                let k = KernelThreads.range(part, of: slices, count: 4 * co)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans,
                            Int32(k.count), Int32(x.channels), Int32(xi.pixels),
                            1, work + k.lowerBound, Int32(4 * co), xi.base, Int32(x.pixelStride),
                            1, dKernel + k.lowerBound * x.channels, Int32(x.channels))
            }
            // dX [pixels, in] = dY4 x K, by images.
            threads.forEach(parts) { part in
                let r = KernelThreads.range(part, of: parts, count: n)
                let dxi = dx.images((n0 + r.lowerBound)..<(n0 + r.upperBound))
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                            Int32(dxi.pixels), Int32(x.channels), Int32(4 * co),
                            1, work + r.lowerBound * perImage, Int32(4 * co), kernel, Int32(x.channels),
                            0, dxi.base, Int32(dx.pixelStride))
            }
            n0 += n
        }
    }

    /// Calls `body(inputPixel, block, outputPixelPointer)` for each input pixel and each of its
    /// four output positions, block = 2 * dy + dx.
    static func forEachBlock(_ x: TensorView, _ y: TensorView,
                             _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        let (h, w) = (x.height, x.width)
        for n in 0..<x.batch {
            for iy in 0..<h {
                for ix in 0..<w {
                    let row = (n * h + iy) * w + ix
                    for by in 0..<2 {
                        for bx in 0..<2 {
                            body(row, by * 2 + bx, y.pixel((n * 2 * h + 2 * iy + by) * 2 * w + 2 * ix + bx))
                        }
                    }
                }
            }
        }
    }
}
