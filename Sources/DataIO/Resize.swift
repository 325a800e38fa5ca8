/// Image resizing for preprocessing and for the submission, as separable linear filters.
///
/// - Shrinking (420x580 to 64x80): **area averaging**. Output pixel i covers the source interval
///   `[i * s, (i + 1) * s)` with `s = in / out`; each source pixel is weighted by how much of it
///   the interval covers, as OpenCV's `INTER_AREA` (Pillow's `BOX` samples at pixel centres instead): every source
///   pixel counts, so thin structures are not skipped and no aliasing is introduced.
/// - Enlarging (64x80 back to 420x580): **bilinear** with pixel centres aligned
///   (`src = (dst + 0.5) * s - 0.5`, clamped at the borders), as Pillow's `BILINEAR` and OpenCV's
///   `INTER_LINEAR` when enlarging.
/// - Equal sizes copy.
/// Each axis is chosen on its own, then rows and columns are filtered one after the other.
public enum Resize {
    /// The weights of one axis: output i reads `count[i]` source indices from `first[i]`.
    struct Axis {
        var first: [Int] = []
        var weights: [[Float]] = []

        init(from n: Int, to m: Int) {
            precondition(n > 0 && m > 0)
            if m < n { self.init(area: n, m) } else { self.init(bilinear: n, m) }
        }

        private init(area n: Int, _ m: Int) {
            let scale = Double(n) / Double(m)
            for i in 0..<m {
                let lo = Double(i) * scale, hi = Double(i + 1) * scale
                let start = Int(lo.rounded(.down)), end = min(n, Int(hi.rounded(.up)))
                var w: [Float] = []
                for j in start..<end {
                    let overlap = min(hi, Double(j + 1)) - max(lo, Double(j))
                    w.append(Float(overlap / scale))
                }
                first.append(start)
                weights.append(w)
            }
        }

        private init(bilinear n: Int, _ m: Int) {
            let scale = Double(n) / Double(m)
            for i in 0..<m {
                let x = min(max((Double(i) + 0.5) * scale - 0.5, 0), Double(n - 1))
                let j = min(Int(x.rounded(.down)), n - 1)
                let f = x - Double(j)
                if j + 1 < n && f > 0 {
                    first.append(j)
                    weights.append([Float(1 - f), Float(f)])
                } else {
                    first.append(j)
                    weights.append([1])
                }
            }
        }
    }

    /// Resizes `count` images of `height x width` (row-major, contiguous) to `outHeight x outWidth`,
    /// writing Float values to `output` (`count * outHeight * outWidth`). `scale` multiplies the
    /// result (for example 1/255 for masks).
    public static func resize<T: BinaryInteger>(
        _ input: UnsafeBufferPointer<T>, count: Int, height: Int, width: Int,
        outHeight: Int, outWidth: Int, scale: Float = 1, into output: UnsafeMutableBufferPointer<Float>
    ) {
        apply(input, Float.init, count: count, height: height, width: width,
              outHeight: outHeight, outWidth: outWidth, scale: scale, into: output)
    }

    /// The same for Float images.
    public static func resize(
        _ input: UnsafeBufferPointer<Float>, count: Int, height: Int, width: Int,
        outHeight: Int, outWidth: Int, scale: Float = 1, into output: UnsafeMutableBufferPointer<Float>
    ) {
        apply(input, { $0 }, count: count, height: height, width: width,
              outHeight: outHeight, outWidth: outWidth, scale: scale, into: output)
    }

    @inline(__always)
    private static func apply<T>(
        _ input: UnsafeBufferPointer<T>, _ value: (T) -> Float, count: Int, height: Int, width: Int,
        outHeight: Int, outWidth: Int, scale: Float, into output: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(input.count >= count * height * width && output.count >= count * outHeight * outWidth)
        let rows = Axis(from: height, to: outHeight), cols = Axis(from: width, to: outWidth)
        var horizontal = [Float](repeating: 0, count: height * outWidth)  // one image, columns resized
        horizontal.withUnsafeMutableBufferPointer { tmp in
            for image in 0..<count {
                let src = input.baseAddress! + image * height * width
                for y in 0..<height {
                    let row = src + y * width
                    for x in 0..<outWidth {
                        var acc: Float = 0
                        let j0 = cols.first[x]
                        for (k, w) in cols.weights[x].enumerated() { acc += w * value(row[j0 + k]) }
                        tmp[y * outWidth + x] = acc
                    }
                }
                let dst = output.baseAddress! + image * outHeight * outWidth
                for y in 0..<outHeight {
                    let i0 = rows.first[y]
                    let w = rows.weights[y]
                    for x in 0..<outWidth {
                        var acc: Float = 0
                        for k in 0..<w.count { acc += w[k] * tmp[(i0 + k) * outWidth + x] }
                        dst[y * outWidth + x] = acc * scale
                    }
                }
            }
        }
    }
}
