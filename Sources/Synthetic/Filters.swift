import Random
// Separable smoothing filters on row-major Float planes (edges clamped). Hot loops use unsafe
// buffers and SIMD accumulators in optimised builds. Unoptimised generic SIMD code is very slow,
// so debug builds (tests) use scalar loops instead: they perform exactly the same floating-point
// operations in the same order for every pixel, so both builds produce identical bytes.

enum Filters {
    /// A normalised Gaussian kernel of radius ceil(3 sigma).
    static func gaussianKernel(sigma: Double) -> [Float] {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        var k = [Double](repeating: 0, count: 2 * radius + 1)
        for i in -radius...radius { k[i + radius] = PortableMath.exp(-Double(i * i) / (2 * sigma * sigma)) }
        var total = 0.0
        for v in k { total += v }
        return k.map { Float($0 / total) }
    }

    /// Horizontal convolution of each row with a row-dependent kernel (`kernels[kernelOfRow[y]]`).
    /// Each row is copied into a padded buffer (edges clamped), then eight outputs at a time are
    /// accumulated tap by tap in SIMD registers (same operation order for every pixel, so the
    /// result does not depend on vectorisation).
    static func convolveRows(_ src: [Float], width w: Int, height h: Int,
                             kernels: [[Float]], kernelOfRow: (Int) -> Int) -> [Float] {
        var dst = [Float](repeating: 0, count: w * h)
        convolveRows(src, width: w, height: h, kernels: kernels, kernelOfRow: kernelOfRow, into: &dst)
        return dst
    }

    /// `convolveRows` writing every element of an existing `w * h` buffer (no allocation).
    static func convolveRows(_ src: [Float], width w: Int, height h: Int,
                             kernels: [[Float]], kernelOfRow: (Int) -> Int, into dst: inout [Float]) {
        precondition(src.count == w * h && dst.count == w * h)
        let maxRadius = kernels.map { $0.count / 2 }.max() ?? 0
        let lanes = 8
        let chunks = (w + lanes - 1) / lanes
        var padded = [Float](repeating: 0, count: chunks * lanes + 2 * maxRadius + lanes)
        var out = [Float](repeating: 0, count: chunks * lanes)
        src.withUnsafeBufferPointer { s in
        dst.withUnsafeMutableBufferPointer { d in
        padded.withUnsafeMutableBufferPointer { pad in
        out.withUnsafeMutableBufferPointer { o in
            let pb = UnsafeRawPointer(pad.baseAddress!)
            let ob = UnsafeMutableRawPointer(o.baseAddress!)
            for y in 0..<h {
                let row = y * w
                let kernel = kernels[kernelOfRow(y)]
                let r = kernel.count / 2
                // pad[i] = src[row + clamp(i - maxRadius)]
                for i in 0..<pad.count { pad[i] = s[row + min(w - 1, max(0, i - maxRadius))] }
                kernel.withUnsafeBufferPointer { k in
                    rowKernel(pb, ob, chunks: chunks, offset: maxRadius - r, kernel: k)
                }
                for x in 0..<w { d[row + x] = o[x] }
            }
        }
        }
        }
        }
    }

    /// Inner loop of `convolveRows`: `out[8c ..< 8c + 8] = sum_t k[t] * pad[8c + offset + t ...]`.
    private static func rowKernel(_ pad: UnsafeRawPointer, _ out: UnsafeMutableRawPointer, chunks: Int, offset: Int,
                                  kernel k: UnsafeBufferPointer<Float>) {
        #if DEBUG
        let p = pad.assumingMemoryBound(to: Float.self), o = out.assumingMemoryBound(to: Float.self)
        for x in 0..<(chunks * 8) {
            var acc: Float = 0
            for t in 0..<k.count { acc += k[t] * p[x + offset + t] }
            o[x] = acc
        }
        #else
        for c in 0..<chunks {
            var acc = SIMD8<Float>(repeating: 0)
            let base = c * 8 + offset
            for t in 0..<k.count {
                acc += k[t] * pad.loadUnaligned(fromByteOffset: (base + t) * 4, as: SIMD8<Float>.self)
            }
            out.storeBytes(of: acc, toByteOffset: c * 32, as: SIMD8<Float>.self)
        }
        #endif
    }

    /// Inner loop of `convolveColumns` for output row `y`.
    private static func columnKernel(_ s: UnsafeBufferPointer<Float>, _ d: UnsafeMutableBufferPointer<Float>,
                                     width w: Int, height h: Int, row y: Int, kernel k: UnsafeBufferPointer<Float>) {
        let r = k.count / 2
        #if DEBUG
        let full = 0
        #else
        let full = w / 8 * 8
        #endif
        let sb = UnsafeRawPointer(s.baseAddress!)
        let db = UnsafeMutableRawPointer(d.baseAddress!)
        let row = y * w
        var x = 0
        while x < full {
            var acc = SIMD8<Float>(repeating: 0)
            for t in 0..<k.count {
                let srow = min(h - 1, max(0, y + t - r)) * w
                acc += k[t] * sb.loadUnaligned(fromByteOffset: (srow + x) * 4, as: SIMD8<Float>.self)
            }
            db.storeBytes(of: acc, toByteOffset: (row + x) * 4, as: SIMD8<Float>.self)
            x += 8
        }
        if x < w {
            var rows = [Int](repeating: 0, count: k.count)
            for t in 0..<k.count { rows[t] = min(h - 1, max(0, y + t - r)) * w }
            rows.withUnsafeBufferPointer { rows in
                while x < w {
                    var acc: Float = 0
                    for t in 0..<k.count { acc += k[t] * s[rows[t] + x] }
                    d[row + x] = acc
                    x += 1
                }
            }
        }
    }

    /// Vertical convolution with one kernel (edges clamped), eight columns at a time.
    static func convolveColumns(_ src: [Float], width w: Int, height h: Int, kernel: [Float]) -> [Float] {
        var dst = [Float](repeating: 0, count: w * h)
        convolveColumns(src, width: w, height: h, kernel: kernel, into: &dst)
        return dst
    }

    /// `convolveColumns` writing every element of an existing `w * h` buffer (no allocation).
    static func convolveColumns(_ src: [Float], width w: Int, height h: Int, kernel: [Float], into dst: inout [Float]) {
        precondition(src.count == w * h && dst.count == w * h)
        src.withUnsafeBufferPointer { s in
        dst.withUnsafeMutableBufferPointer { d in
        kernel.withUnsafeBufferPointer { k in
            for y in 0..<h { columnKernel(s, d, width: w, height: h, row: y, kernel: k) }
        }
        }
        }
    }

    /// Approximate Gaussian blur by three passes of a box filter in each direction (constant cost
    /// per pixel whatever the radius; standard deviation about sqrt(r (r + 1)) per direction).
    static func boxBlur3(_ field: inout [Float], width w: Int, height h: Int, radiusX rx: Int, radiusY ry: Int) {
        var tmp = [Float](repeating: 0, count: w * h)
        for _ in 0..<3 {
            if rx > 0 { boxRows(&field, &tmp, w, h, rx) }
            if ry > 0 { boxColumns(&field, &tmp, w, h, ry) }
        }
    }

    private static func boxRows(_ f: inout [Float], _ tmp: inout [Float], _ w: Int, _ h: Int, _ r: Int) {
        let norm = 1 / Float(2 * r + 1)
        f.withUnsafeMutableBufferPointer { a in
            tmp.withUnsafeMutableBufferPointer { b in
                for y in 0..<h {
                    let row = y * w
                    @inline(__always) func at(_ x: Int) -> Float { a[row + min(w - 1, max(0, x))] }
                    var sum: Float = 0
                    for x in -r...r { sum += at(x) }
                    let lo = min(w, r), hi = max(lo, w - r - 1)
                    for x in 0..<lo {
                        b[row + x] = sum * norm
                        sum += at(x + r + 1) - at(x - r)
                    }
                    for x in lo..<hi {  // x - r >= 0 and x + r + 1 < w: no clamping
                        b[row + x] = sum * norm
                        sum += a[row + x + r + 1] - a[row + x - r]
                    }
                    for x in hi..<w {
                        b[row + x] = sum * norm
                        sum += at(x + r + 1) - at(x - r)
                    }
                }
                a.baseAddress!.update(from: b.baseAddress!, count: w * h)
            }
        }
    }

    private static func boxColumns(_ f: inout [Float], _ tmp: inout [Float], _ w: Int, _ h: Int, _ r: Int) {
        let norm = 1 / Float(2 * r + 1)
        var sums = [Float](repeating: 0, count: w)
        f.withUnsafeMutableBufferPointer { a in
            tmp.withUnsafeMutableBufferPointer { b in
                sums.withUnsafeMutableBufferPointer { s in
                    for t in -r...r {
                        let row = min(h - 1, max(0, t)) * w
                        for x in 0..<w { s[x] += a[row + x] }
                    }
                    for y in 0..<h {
                        let row = y * w
                        let addRow = min(h - 1, y + r + 1) * w
                        let subRow = max(0, y - r) * w
                        for x in 0..<w {
                            b[row + x] = s[x] * norm
                            s[x] += a[addRow + x] - a[subRow + x]
                        }
                    }
                }
                a.baseAddress!.update(from: b.baseAddress!, count: w * h)
            }
        }
    }

    /// Shifts and scales `field` in place to mean 0 and standard deviation 1.
    static func standardise(_ field: inout [Float]) {
        var sum = 0.0, sum2 = 0.0
        for v in field { sum += Double(v); sum2 += Double(v) * Double(v) }
        let n = Double(max(1, field.count))
        let mean = sum / n
        let sd = max(1e-12, (sum2 / n - mean * mean).squareRoot())
        let m = Float(mean), inv = Float(1 / sd)
        field.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = (p[i] - m) * inv } }
    }
}
