/// 2x2 max pooling, stride 2 (Keras `MaxPooling2D((2, 2))`; height and width even). The backward
/// pass sends each output gradient to the arg-max of its window, found again from the input
/// (the first maximum in row-major order), so nothing is stored between the passes.
public enum MaxPool2x2 {
    public static func forward(input x: TensorView, output y: TensorView, on threads: KernelThreads) {
        precondition(x.height == 2 * y.height && x.width == 2 * y.width && x.channels == y.channels)
        let c = x.channels
        forEachImageRange(y.batch, on: threads) { images in
          for n in images {
            for oy in 0..<y.height {
                for ox in 0..<y.width {
                    let out = y.pixel((n * y.height + oy) * y.width + ox)
                    let a = x.pixel((n * x.height + 2 * oy) * x.width + 2 * ox)
                    let b = a + x.pixelStride
                    let d = a + x.width * x.pixelStride
                    let e = d + x.pixelStride
                    for i in 0..<c { out[i] = max(max(a[i], b[i]), max(d[i], e[i])) }
                }
            }
          }
        }
    }

    /// Accumulates (`+=`) into `dInput`: the pooled tensor of the U-Net also feeds a concatenation,
    /// whose gradient is already there.
    public static func backward(input x: TensorView, dOutput dy: TensorView, dInput dx: TensorView,
                                on threads: KernelThreads) {
        let c = x.channels
        forEachImageRange(dy.batch, on: threads) { images in
          for n in images {
            for oy in 0..<dy.height {
                for ox in 0..<dy.width {
                    let g = dy.pixel((n * dy.height + oy) * dy.width + ox)
                    let p0 = (n * x.height + 2 * oy) * x.width + 2 * ox
                    let a = x.pixel(p0), b = x.pixel(p0 + 1)
                    let d = x.pixel(p0 + x.width), e = x.pixel(p0 + x.width + 1)
                    let da = dx.pixel(p0), db = dx.pixel(p0 + 1)
                    let dd = dx.pixel(p0 + x.width), de = dx.pixel(p0 + x.width + 1)
                    for i in 0..<c {
                        var best = a[i], target = da
                        if b[i] > best { best = b[i]; target = db }
                        if d[i] > best { best = d[i]; target = dd }
                        if e[i] > best { target = de }
                        target[i] += g[i]
                    }
                }
            }
          }
        }
    }

    /// Runs `body` on the kernel threads, each with its own range of the batch's images.
    @inline(__always)
    static func forEachImageRange(_ batch: Int, on threads: KernelThreads, _ body: (Range<Int>) -> Void) {
        let parts = min(threads.count, batch)
        threads.forEach(parts) { part in body(KernelThreads.range(part, of: parts, count: batch)) }
    }
}

/// 2x nearest-neighbour upsampling (Keras `UpSampling2D((2, 2))`): each pixel becomes a 2x2 block.
public enum Upsample2x {
    public static func forward(input x: TensorView, output y: TensorView) {
        precondition(y.height == 2 * x.height && y.width == 2 * x.width && x.channels == y.channels)
        let c = x.channels
        for n in 0..<x.batch {
            for iy in 0..<x.height {
                for ix in 0..<x.width {
                    let src = x.pixel((n * x.height + iy) * x.width + ix)
                    let p0 = (n * y.height + 2 * iy) * y.width + 2 * ix
                    y.pixel(p0).update(from: src, count: c)
                    y.pixel(p0 + 1).update(from: src, count: c)
                    y.pixel(p0 + y.width).update(from: src, count: c)
                    y.pixel(p0 + y.width + 1).update(from: src, count: c)
                }
            }
        }
    }

    /// `dInput` is overwritten with the sum of the four output gradients of each block.
    public static func backward(dOutput dy: TensorView, dInput dx: TensorView) {
        let c = dx.channels
        for n in 0..<dx.batch {
            for iy in 0..<dx.height {
                for ix in 0..<dx.width {
                    let d = dx.pixel((n * dx.height + iy) * dx.width + ix)
                    let p0 = (n * dy.height + 2 * iy) * dy.width + 2 * ix
                    let a = dy.pixel(p0), b = dy.pixel(p0 + 1)
                    let e = dy.pixel(p0 + dy.width), f = dy.pixel(p0 + dy.width + 1)
                    for i in 0..<c { d[i] = (a[i] + b[i]) + (e[i] + f[i]) }
                }
            }
        }
    }
}
