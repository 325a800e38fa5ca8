import Testing
@testable import Kernels

/// Winograd F(2x2, 3x3) against the im2col convolution (`Conv3x3`, itself checked against a
/// direct Double convolution and finite differences): forward outputs, dL/d(pre-activation),
/// dL/dx, dL/dkernel and dL/dbias, through channel slices, odd heights and widths (tiles half
/// outside), channel counts on and off the 8-wide vectors, and 1 to 3 threads. Tolerance: the
/// transforms only add and halve, so the results differ by rounding alone, stated as 1e-5 of
/// each tensor's largest magnitude (the sums here have up to 9 x 24 terms). Small kernel budgets
/// make the passes run in slices of channels, as the U-Net's widest layers do.
@Suite("Kernels: Winograd F(2x2, 3x3) against im2col")
struct WinogradTests {
    struct Shape: CustomTestStringConvertible, Sendable {
        let n: Int, h: Int, w: Int, ci: Int, co: Int, threads: Int, activation: Activation
        var budget = Winograd3x3.defaultKernelBudget
        var testDescription: String {
            "\(n)x\(h)x\(w) \(ci)->\(co), \(threads) thread(s), \(activation)"
                + (budget < 16 * ci * co ? ", kernel budget \(budget) (slices)" : "")
        }
    }

    static let shapes: [Shape] = [
        Shape(n: 2, h: 4, w: 6, ci: 8, co: 16, threads: 1, activation: .relu),
        Shape(n: 3, h: 5, w: 7, ci: 3, co: 5, threads: 1, activation: .linear),
        Shape(n: 1, h: 1, w: 1, ci: 9, co: 2, threads: 1, activation: .relu),
        Shape(n: 3, h: 6, w: 3, ci: 24, co: 13, threads: 2, activation: .relu),
        Shape(n: 5, h: 7, w: 4, ci: 17, co: 8, threads: 3, activation: .sigmoid),
        Shape(n: 2, h: 4, w: 5, ci: 16, co: 32, threads: 2, activation: .linear),
        Shape(n: 40, h: 8, w: 10, ci: 8, co: 8, threads: 2, activation: .relu),  // several blocks per thread
        // From 128 output channels, the kernel gradient's threads split the output channels.
        Shape(n: 2, h: 3, w: 4, ci: 8, co: 130, threads: 2, activation: .relu),
        Shape(n: 3, h: 5, w: 2, ci: 20, co: 128, threads: 3, activation: .linear),
        // Slices: output channels 16, 16, 8 (forward, weights), input channels 8, 8, 4 (data).
        Shape(n: 2, h: 5, w: 6, ci: 20, co: 40, threads: 2, activation: .relu, budget: 16 * 20 * 16),
        // Slices of 48, 48, 40 output channels (equal widths in multiples of 8), each split
        // between the threads; 8, 4 input ones.
        Shape(n: 2, h: 3, w: 4, ci: 12, co: 136, threads: 2, activation: .relu, budget: 16 * 12 * 64),
        // One thread, slices of 8 and a last one of 1 input channel.
        Shape(n: 3, h: 4, w: 4, ci: 9, co: 24, threads: 1, activation: .sigmoid, budget: 16 * 9 * 8),
    ]

    @Test func sliceWidthsAreEqualAndWithinTheBudget() {
        #expect(Array(Winograd3x3.slices(136, against: 12, kernelBudget: 16 * 12 * 64)) == [0..<48, 48..<96, 96..<136])
        #expect(Array(Winograd3x3.slices(512, against: 512, kernelBudget: 1 << 21)) == [0..<256, 256..<512])
        #expect(Array(Winograd3x3.slices(256, against: 768, kernelBudget: 1 << 21)) == [0..<128, 128..<256])
        #expect(Array(Winograd3x3.slices(64, against: 512, kernelBudget: 1 << 21)) == [0..<64])
        #expect(Array(Winograd3x3.slices(5, against: 1000, kernelBudget: 16)) == [0..<5])
    }

    @Test(arguments: shapes)
    func matchesIm2col(shape s: Shape) {
        var g = GradientCheck()
        let (inStride, outStride, inOffset, outOffset) = (s.ci + 3, s.co + 2, 1, 2)
        let pixels = s.n * s.h * s.w
        let x0 = g.uniform(pixels * inStride), kernel = g.uniform(9 * s.ci * s.co), bias = g.uniform(s.co)
        let r = g.uniform(pixels * outStride)

        func run(winograd: Bool) -> [[Float]] {
            let pool = KernelThreads(s.threads)
            var x = x0, y = [Float](repeating: 0, count: pixels * outStride), dy = r
            var dx = [Float](repeating: 7, count: x.count), dk = [Float](repeating: 0, count: kernel.count)
            var db = [Float](repeating: 0, count: s.co)
            let workCount = winograd
                ? Winograd3x3.workspace(inChannels: s.ci, outChannels: s.co, threads: s.threads, kernelBudget: s.budget)
                : Conv3x3.workspace(height: s.h, width: s.w, inChannels: max(s.ci, s.co), imagesPerChunk: s.n)
            var work = [Float](repeating: .nan, count: workCount)  // nothing may read it unwritten
            x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            dy.withUnsafeMutableBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { dxp in
            dk.withUnsafeMutableBufferPointer { dkp in db.withUnsafeMutableBufferPointer { dbp in
            work.withUnsafeMutableBufferPointer { wp in
                func view(_ p: UnsafeMutablePointer<Float>, _ c: Int, _ stride: Int) -> TensorView {
                    TensorView(base: p, batch: s.n, height: s.h, width: s.w, channels: c, pixelStride: stride)
                }
                let xv = view(xp.baseAddress! + inOffset, s.ci, inStride)
                let yv = view(yp.baseAddress! + outOffset, s.co, outStride)
                let dyv = view(dyp.baseAddress! + outOffset, s.co, outStride)
                let dxv = view(dxp.baseAddress! + inOffset, s.ci, inStride)
                let (w, count) = (wp.baseAddress!, wp.count)
                if winograd {
                    Winograd3x3.forward(input: xv, kernel: kernel, bias: bias, output: yv, activation: s.activation,
                                        work: w, workCount: count, kernelBudget: s.budget, on: pool)
                    Winograd3x3.backwardWeights(input: xv, output: yv, activation: s.activation, dOutput: dyv,
                                                dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!, work: w, workCount: count,
                                                kernelBudget: s.budget, on: pool)
                    Winograd3x3.backwardData(kernel: kernel, dOutput: dyv, dInput: dxv, work: w, workCount: count,
                                             kernelBudget: s.budget, on: pool)
                } else {
                    Conv3x3.forward(input: xv, kernel: kernel, bias: bias, output: yv, activation: s.activation,
                                    work: w, workCount: count, on: pool)
                    Conv3x3.backward(input: xv, kernel: kernel, output: yv, activation: s.activation, dOutput: dyv,
                                     dInput: dxv, dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!, work: w, workCount: count, on: pool)
                }
            }}}}}}}
            return [y, dy, dx, dk, db]
        }
        let expected = run(winograd: false), actual = run(winograd: true)
        for (name, (a, b)) in zip(["y", "dy", "dx", "dkernel", "dbias"], zip(expected, actual)) {
            let scale = max(1e-3, a.map { abs(Double($0)) }.max() ?? 0)
            let worst = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
            #expect(worst <= 1e-5 * scale, "\(name): worst difference \(worst) at scale \(scale)")
            #expect(!b.contains { $0.isNaN }, "\(name): NaN (read unwritten workspace)")
        }
        // The gaps between channel slices are untouched: dx's padding keeps its 7s.
        #expect(actual[2][0] == 7 && actual[2][inStride - 1] == 7)
    }

    /// Kernel and bias gradients accumulate (`+=`, as every layer's): from a non-zero start the
    /// result is the start plus the gradient from zero.
    @Test func gradientsAccumulate() {
        var g = GradientCheck()
        let (n, h, w, ci, co) = (1, 3, 4, 4, 3)
        var x = g.uniform(n * h * w * ci), y = [Float](repeating: 1, count: n * h * w * co)
        let dy0 = g.uniform(n * h * w * co), start = g.uniform(9 * ci * co), biasStart = g.uniform(co)
        func gradient(from dk0: [Float], _ db0: [Float]) -> ([Float], [Float]) {
            var dk = dk0, db = db0, dy = dy0
            var work = [Float](repeating: 0, count: Winograd3x3.workspace(inChannels: ci, outChannels: co, threads: 1))
            x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            dy.withUnsafeMutableBufferPointer { dyp in work.withUnsafeMutableBufferPointer { wp in
                Winograd3x3.backwardWeights(input: TensorView(base: xp.baseAddress!, batch: n, height: h, width: w, channels: ci),
                                            output: TensorView(base: yp.baseAddress!, batch: n, height: h, width: w, channels: co),
                                            activation: .linear,
                                            dOutput: TensorView(base: dyp.baseAddress!, batch: n, height: h, width: w, channels: co),
                                            dKernel: &dk, dBias: &db, work: wp.baseAddress!, workCount: wp.count, on: .one)
            }}}}
            return (dk, db)
        }
        let (fromZero, biasFromZero) = gradient(from: [Float](repeating: 0, count: start.count), [Float](repeating: 0, count: co))
        let (accumulated, biasAccumulated) = gradient(from: start, biasStart)
        #expect(fromZero.contains { $0 != 0 })
        for i in 0..<start.count { #expect(abs(accumulated[i] - (start[i] + fromZero[i])) < 1e-5) }
        for i in 0..<co { #expect(abs(biasAccumulated[i] - (biasStart[i] + biasFromZero[i])) < 1e-5) }
    }

    /// A concatenation read in place — `[up | skip]` with `up` a nearest 2x upsampling of a
    /// half-size tensor, or two same-size tensors — gives what the materialised concatenation
    /// gives: outputs, kernel and bias gradients, and input gradients (the upsampled part's as
    /// the 2x2 block sums, what `Upsample2x.backward` makes of the full-size gradient). Sliced:
    /// the input gradient in slices of 8 channels, the second across the parts' boundary.
    @Test(arguments: [true, false], [false, true])
    func concatenationReadInPlace(upsampled: Bool, sliced: Bool) {
        var g = GradientCheck()
        let (n, h, w, ca, cb, co) = (3, 6, 4, 10, 5, 9)
        let (ha, wa) = upsampled ? (h / 2, w / 2) : (h, w)
        let a = g.uniform(n * ha * wa * ca), b = g.uniform(n * h * w * cb)
        let kernel = g.uniform(9 * (ca + cb) * co), bias = g.uniform(co), r = g.uniform(n * h * w * co)
        // The materialised concatenation.
        var whole = [Float](repeating: 0, count: n * h * w * (ca + cb))
        for s in 0..<n { for y in 0..<h { for x in 0..<w {
            let p = (s * h + y) * w + x
            let q = upsampled ? (s * ha + y / 2) * wa + x / 2 : p
            for c in 0..<ca { whole[p * (ca + cb) + c] = a[q * ca + c] }
            for c in 0..<cb { whole[p * (ca + cb) + ca + c] = b[p * cb + c] }
        }}}
        let pool = KernelThreads(2)
        let budget = sliced ? 16 * co * 8 : Winograd3x3.defaultKernelBudget
        #expect(Array(Winograd3x3.slices(ca + cb, against: co, kernelBudget: budget)).count == (sliced ? 2 : 1))
        var work = [Float](repeating: 0, count: Winograd3x3.workspace(inChannels: ca + cb, outChannels: co, threads: 2,
                                                                      kernelBudget: budget))
        func run(concatenated: Bool) -> [[Float]] {
            var a = a, b = b, whole = whole
            var y = [Float](repeating: 0, count: n * h * w * co), dy = r
            var dk = [Float](repeating: 0, count: kernel.count), db = [Float](repeating: 0, count: co)
            var da = [Float](repeating: 7, count: a.count), dbb = [Float](repeating: 7, count: b.count)
            var dwhole = [Float](repeating: 7, count: whole.count)
            a.withUnsafeMutableBufferPointer { ap in b.withUnsafeMutableBufferPointer { bp in
            whole.withUnsafeMutableBufferPointer { wp in y.withUnsafeMutableBufferPointer { yp in
            dy.withUnsafeMutableBufferPointer { dyp in dk.withUnsafeMutableBufferPointer { dkp in
            db.withUnsafeMutableBufferPointer { dbp in da.withUnsafeMutableBufferPointer { dap in
            dbb.withUnsafeMutableBufferPointer { dbbp in dwhole.withUnsafeMutableBufferPointer { dwp in
            work.withUnsafeMutableBufferPointer { work in
                func view(_ p: UnsafeMutablePointer<Float>, _ h: Int, _ w: Int, _ c: Int) -> TensorView {
                    TensorView(base: p, batch: n, height: h, width: w, channels: c)
                }
                let x = concatenated
                    ? Concatenation(view(ap.baseAddress!, ha, wa, ca), upsampled: upsampled, view(bp.baseAddress!, h, w, cb))
                    : Concatenation(view(wp.baseAddress!, h, w, ca + cb))
                let dx = concatenated
                    ? Concatenation(view(dap.baseAddress!, ha, wa, ca), upsampled: upsampled, view(dbbp.baseAddress!, h, w, cb))
                    : Concatenation(view(dwp.baseAddress!, h, w, ca + cb))
                let yv = view(yp.baseAddress!, h, w, co), dyv = view(dyp.baseAddress!, h, w, co)
                Winograd3x3.forward(input: x, kernel: kernel, bias: bias, output: yv, activation: .relu,
                                    work: work.baseAddress!, workCount: work.count, kernelBudget: budget, on: pool)
                Winograd3x3.backwardWeights(input: x, output: yv, activation: .relu, dOutput: dyv,
                                            dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!,
                                            work: work.baseAddress!, workCount: work.count, kernelBudget: budget, on: pool)
                Winograd3x3.backwardData(kernel: kernel, dOutput: dyv, dInput: dx,
                                         work: work.baseAddress!, workCount: work.count, kernelBudget: budget, on: pool)
            }}}}}}}}}}}
            if concatenated { return [y, dk, db, da, dbb] }
            // Split the materialised gradient into the parts' gradients.
            var ga = [Float](repeating: 0, count: a.count), gb = [Float](repeating: 0, count: b.count)
            for s in 0..<n { for y in 0..<h { for x in 0..<w {
                let p = (s * h + y) * w + x
                let q = upsampled ? (s * ha + y / 2) * wa + x / 2 : p
                for c in 0..<ca { ga[q * ca + c] += dwhole[p * (ca + cb) + c] }
                for c in 0..<cb { gb[p * cb + c] = dwhole[p * (ca + cb) + ca + c] }
            }}}
            return [y, dk, db, ga, gb]
        }
        let expected = run(concatenated: false), actual = run(concatenated: true)
        for (name, (e, x)) in zip(["y", "dkernel", "dbias", "d first", "d second"], zip(expected, actual)) {
            let scale = max(1e-3, e.map { abs(Double($0)) }.max() ?? 0)
            let worst = zip(e, x).map { abs(Double($0) - Double($1)) }.max() ?? 0
            #expect(worst <= 1e-5 * scale, "\(name): worst difference \(worst) at scale \(scale)")
        }
    }
}
