import Testing
import Random
@testable import Kernels

/// Every kernel's forward pass against a direct Double implementation, and its backward pass
/// against finite differences. Tolerance: 2e-3 relative (Float forward passes, Double sums).
@Suite("Kernels: forward and gradient checks")
struct KernelTests {
    static let tolerance = 2e-3

    /// Direct 3x3 same convolution in Double (NHWC, Keras kernel layout), the reference.
    static func referenceConv3x3(_ x: [Float], n: Int, h: Int, w: Int, ci: Int,
                                 _ k: [Float], _ b: [Float], co: Int) -> [Double] {
        var y = [Double](repeating: 0, count: n * h * w * co)
        for s in 0..<n { for oy in 0..<h { for ox in 0..<w { for o in 0..<co {
            var acc = Double(b[o])
            for ky in 0..<3 { for kx in 0..<3 {
                let iy = oy + ky - 1, ix = ox + kx - 1
                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                for c in 0..<ci {
                    acc += Double(x[((s * h + iy) * w + ix) * ci + c]) * Double(k[((ky * 3 + kx) * ci + c) * co + o])
                }
            }}
            y[((s * h + oy) * w + ox) * co + o] = acc
        }}}}
        return y
    }

    @Test func conv3x3ForwardMatchesDirectConvolution() {
        var g = GradientCheck()
        let (n, h, w, ci, co) = (3, 5, 7, 3, 4)
        var x = g.uniform(n * h * w * ci)
        let k = g.uniform(9 * ci * co), b = g.uniform(co)
        var y = [Float](repeating: 0, count: n * h * w * co)
        var work = [Float](repeating: 0, count: Conv3x3.workspace(height: h, width: w, inChannels: ci, imagesPerChunk: 2))
        x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            work.withUnsafeMutableBufferPointer { wp in
                Conv3x3.forward(input: TensorView(base: xp.baseAddress!, batch: n, height: h, width: w, channels: ci),
                                kernel: k, bias: b,
                                output: TensorView(base: yp.baseAddress!, batch: n, height: h, width: w, channels: co),
                                activation: .linear, work: wp.baseAddress!, workCount: wp.count, on: .one)
            }}}
        let reference = Self.referenceConv3x3(x, n: n, h: h, w: w, ci: ci, k, b, co: co)
        for i in 0..<y.count { #expect(abs(Double(y[i]) - reference[i]) < 1e-5) }
    }

    /// The threaded convolution (`KernelThreads` of 2 and 3: images split for im2col, the forward
    /// GEMM and col2im; output channels for the kernel gradient) gives the one-thread results,
    /// through channel slices and with chunks that split the batch unevenly (5 images, 3 per chunk).
    @Test func threadedConvolutionMatchesOneThread() {
        var g = GradientCheck()
        let (n, h, w, ci, co) = (5, 4, 6, 3, 5)
        let (inStride, outStride) = (4, 7)
        let x0 = g.uniform(n * h * w * inStride), kernel = g.uniform(9 * ci * co), bias = g.uniform(co)
        let r = g.uniform(n * h * w * outStride)
        func run(threads: Int) -> [[Float]] {
            let pool = KernelThreads(threads)
            var x = x0, y = [Float](repeating: 0, count: n * h * w * outStride), dy = r
            var dx = [Float](repeating: 0, count: x.count), dk = [Float](repeating: 0, count: kernel.count)
            var db = [Float](repeating: 0, count: co)
            var work = [Float](repeating: 0, count: Conv3x3.workspace(height: h, width: w, inChannels: ci, imagesPerChunk: 3))
            x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            dy.withUnsafeMutableBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { dxp in
            dk.withUnsafeMutableBufferPointer { dkp in db.withUnsafeMutableBufferPointer { dbp in
            work.withUnsafeMutableBufferPointer { wp in
                let xv = TensorView(base: xp.baseAddress! + 1, batch: n, height: h, width: w, channels: ci, pixelStride: inStride)
                let yv = TensorView(base: yp.baseAddress! + 2, batch: n, height: h, width: w, channels: co, pixelStride: outStride)
                let dyv = TensorView(base: dyp.baseAddress! + 2, batch: n, height: h, width: w, channels: co, pixelStride: outStride)
                let dxv = TensorView(base: dxp.baseAddress! + 1, batch: n, height: h, width: w, channels: ci, pixelStride: inStride)
                Conv3x3.forward(input: xv, kernel: kernel, bias: bias, output: yv, activation: .relu,
                                work: wp.baseAddress!, workCount: wp.count, on: pool)
                Conv3x3.backward(input: xv, kernel: kernel, output: yv, activation: .relu, dOutput: dyv, dInput: dxv,
                                 dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!, work: wp.baseAddress!, workCount: wp.count, on: pool)
            }}}}}}}
            return [y, dy, dx, dk, db]
        }
        let one = run(threads: 1)
        for threads in [2, 3] {
            let many = run(threads: threads)
            for (a, b) in zip(one, many) {
                let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                #expect(worst < 1e-6, "\(threads) threads: relative difference \(worst)")
            }
        }
    }

    /// Conv3x3 reading a channel slice and writing into a channel slice (as inside the U-Net's
    /// concatenation buffers), chunked one image at a time. Linear: every gradient, with a large
    /// step (the loss is linear in each parameter). ReLU: kernel and bias with a small step (an
    /// input step moves many outputs across the kink at once).
    @Test(arguments: [Activation.linear, .relu])
    func conv3x3GradientsThroughSlices(activation: Activation) {
        let step: Float = activation == .linear ? 1e-1 : 1e-3
        var g = GradientCheck()
        let (n, h, w, ci, co) = (2, 4, 5, 3, 2)
        let (inStride, outStride, inOffset, outOffset) = (5, 6, 1, 3)
        var xbuf = g.uniform(n * h * w * inStride)
        var kernel = g.uniform(9 * ci * co), bias = g.uniform(co, 0.2...0.6)
        var ybuf = [Float](repeating: 0, count: n * h * w * outStride)
        var dybuf = [Float](repeating: 0, count: n * h * w * outStride)
        var dxbuf = [Float](repeating: 7, count: n * h * w * inStride)
        var dk = [Float](repeating: 0, count: kernel.count), db = [Float](repeating: 0, count: co)
        var work = [Float](repeating: 0, count: Conv3x3.workspace(height: h, width: w, inChannels: ci, imagesPerChunk: 1))
        let r = g.uniform(n * h * w * co)

        xbuf.withUnsafeMutableBufferPointer { xp in ybuf.withUnsafeMutableBufferPointer { yp in
        dybuf.withUnsafeMutableBufferPointer { dyp in dxbuf.withUnsafeMutableBufferPointer { dxp in
        kernel.withUnsafeMutableBufferPointer { kp in bias.withUnsafeMutableBufferPointer { bp in
        work.withUnsafeMutableBufferPointer { wp in
            let x = TensorView(base: xp.baseAddress! + inOffset, batch: n, height: h, width: w, channels: ci, pixelStride: inStride)
            let y = TensorView(base: yp.baseAddress! + outOffset, batch: n, height: h, width: w, channels: co, pixelStride: outStride)
            let dy = TensorView(base: dyp.baseAddress! + outOffset, batch: n, height: h, width: w, channels: co, pixelStride: outStride)
            let dx = TensorView(base: dxp.baseAddress! + inOffset, batch: n, height: h, width: w, channels: ci, pixelStride: inStride)
            func loss() -> Double {
                Conv3x3.forward(input: x, kernel: kp.baseAddress!, bias: bp.baseAddress!, output: y, activation: activation,
                                work: wp.baseAddress!, workCount: wp.count, on: .one)
                var s = 0.0
                for p in 0..<y.pixels { for c in 0..<co { s += Double(r[p * co + c]) * Double(y.pixel(p)[c]) } }
                return s
            }
            _ = loss()
            for p in 0..<y.pixels { for c in 0..<co { dy.pixel(p)[c] = r[p * co + c] } }
            dk.withUnsafeMutableBufferPointer { dkp in db.withUnsafeMutableBufferPointer { dbp in
                Conv3x3.backward(input: x, kernel: kp.baseAddress!, output: y, activation: activation, dOutput: dy,
                                 dInput: dx, dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!,
                                 work: wp.baseAddress!, workCount: wp.count, on: .one)
            }}
            var dxSlice = [Float]()
            for p in 0..<x.pixels { for c in 0..<ci { dxSlice.append(dx.pixel(p)[c]) } }
            // Gaps between slices are untouched.
            #expect(dxp[0] == 7 && dxp[inStride - 1] == 7)
            #expect(GradientCheck.worstError(parameter: kp.baseAddress!, count: kp.count, analytic: dk, step: step, loss: loss) < Self.tolerance)
            #expect(GradientCheck.worstError(parameter: bp.baseAddress!, count: co, analytic: db, step: step, loss: loss) < Self.tolerance)
            guard activation == .linear else { return }
            // Input gradient: perturb the strided input elements.
            var worst = 0.0
            for p in Swift.stride(from: 0, to: x.pixels, by: 3) { for c in 0..<ci {
                let e = GradientCheck.worstError(parameter: x.pixel(p) + c, count: 1, analytic: [dxSlice[p * ci + c]], step: step, loss: loss)
                worst = max(worst, e)
            }}
            #expect(worst < Self.tolerance)
        }}}}}}}
    }

    @Test func conv1x1SigmoidGradients() {
        var g = GradientCheck()
        let (pixels, ci, co) = (2 * 3 * 4, 5, 1)
        var x = g.uniform(pixels * ci), k = g.uniform(ci * co), b = g.uniform(co)
        var y = [Float](repeating: 0, count: pixels * co), dy = g.uniform(pixels * co)
        let r = dy
        var dx = [Float](repeating: 0, count: x.count), dk = [Float](repeating: 0, count: k.count), db: [Float] = [0]
        x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
        k.withUnsafeMutableBufferPointer { kp in b.withUnsafeMutableBufferPointer { bp in
        dy.withUnsafeMutableBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { dxp in
            let xv = TensorView(base: xp.baseAddress!, batch: 2, height: 3, width: 4, channels: ci)
            let yv = TensorView(base: yp.baseAddress!, batch: 2, height: 3, width: 4, channels: co)
            func loss() -> Double {
                Conv1x1.forward(input: xv, kernel: kp.baseAddress!, bias: bp.baseAddress!, output: yv, activation: .sigmoid)
                return weightedSum(yp.baseAddress!, r)
            }
            _ = loss()
            for i in 0..<yp.count { #expect(yp[i] > 0 && yp[i] < 1) }
            dk.withUnsafeMutableBufferPointer { dkp in db.withUnsafeMutableBufferPointer { dbp in
                Conv1x1.backward(input: xv, kernel: kp.baseAddress!, output: yv, activation: .sigmoid,
                                 dOutput: TensorView(base: dyp.baseAddress!, batch: 2, height: 3, width: 4, channels: co),
                                 dInput: TensorView(base: dxp.baseAddress!, batch: 2, height: 3, width: 4, channels: ci),
                                 dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!, on: .one)
            }}
            #expect(GradientCheck.worstError(parameter: kp.baseAddress!, count: kp.count, analytic: dk, loss: loss) < Self.tolerance)
            #expect(GradientCheck.worstError(parameter: bp.baseAddress!, count: 1, analytic: db, loss: loss) < Self.tolerance)
            #expect(GradientCheck.worstError(parameter: xp.baseAddress!, count: xp.count, analytic: Array(dxp), loss: loss) < Self.tolerance)
        }}}}}}
    }

    /// The threaded transposed convolution (images split for the GEMMs and the scatter, rows of
    /// dL/dkernel for its GEMM) gives the one-thread results, with chunks of 3 of 7 images.
    @Test func threadedTransposedConvolutionMatchesOneThread() {
        var g = GradientCheck()
        let (n, h, w, ci, co) = (7, 3, 2, 5, 4)
        let x0 = g.uniform(n * h * w * ci), kernel = g.uniform(4 * co * ci), bias = g.uniform(co)
        let r = g.uniform(n * 4 * h * w * co)
        func run(threads: Int) -> [[Float]] {
            let pool = KernelThreads(threads)
            var x = x0, y = [Float](repeating: 0, count: r.count), dy = r
            var dx = [Float](repeating: 0, count: x.count), dk = [Float](repeating: 0, count: kernel.count)
            var db = [Float](repeating: 0, count: co)
            var work = [Float](repeating: 0, count: 3 * ConvTranspose2x2.workspace(inputPixelsPerChunk: h * w, outChannels: co))
            x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            dy.withUnsafeMutableBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { dxp in
            dk.withUnsafeMutableBufferPointer { dkp in db.withUnsafeMutableBufferPointer { dbp in
            work.withUnsafeMutableBufferPointer { wp in
                let xv = TensorView(base: xp.baseAddress!, batch: n, height: h, width: w, channels: ci)
                let yv = TensorView(base: yp.baseAddress!, batch: n, height: 2 * h, width: 2 * w, channels: co)
                let dyv = TensorView(base: dyp.baseAddress!, batch: n, height: 2 * h, width: 2 * w, channels: co)
                let dxv = TensorView(base: dxp.baseAddress!, batch: n, height: h, width: w, channels: ci)
                ConvTranspose2x2.forward(input: xv, kernel: kernel, bias: bias, output: yv,
                                         work: wp.baseAddress!, workCount: wp.count, on: pool)
                ConvTranspose2x2.backward(input: xv, kernel: kernel, dOutput: dyv, dInput: dxv, dKernel: dkp.baseAddress!,
                                          dBias: dbp.baseAddress!, work: wp.baseAddress!, workCount: wp.count, on: pool)
            }}}}}}}
            return [y, dx, dk, db]
        }
        let one = run(threads: 1)
        for threads in [2, 3] {
            for (a, b) in zip(one, run(threads: threads)) {
                let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($0)) }.max() ?? 0
                #expect(worst < 1e-6, "\(threads) threads: relative difference \(worst)")
            }
        }
    }

    /// Max pooling (split by images), bias sums (split by channels) and ReLU's backward pass
    /// (8-wide) on the kernel threads give exactly the one-thread results, channel counts on and
    /// off the vectors, channel slices included; the sums against a plain Double reference.
    @Test(arguments: [3, 17])
    func threadedPoolingBiasAndReLUMatchOneThread(channels c: Int) {
        var g = GradientCheck()
        let (n, h, w, stride) = (5, 4, 6, c + 2)
        let x0 = g.uniform(n * h * w * stride), dy0 = g.uniform(n * (h / 2) * (w / 2) * c)
        let start = g.uniform(n * h * w * stride), bias0 = g.uniform(c)
        func run(threads: Int) -> [[Float]] {
            let pool = KernelThreads(threads)
            var x = x0, dy = dy0, dx = start, masked = start, db = bias0
            var y = [Float](repeating: 0, count: dy0.count)
            x.withUnsafeMutableBufferPointer { xp in dy.withUnsafeMutableBufferPointer { dyp in
            dx.withUnsafeMutableBufferPointer { dxp in y.withUnsafeMutableBufferPointer { yp in
            masked.withUnsafeMutableBufferPointer { mp in db.withUnsafeMutableBufferPointer { dbp in
                // A channel slice (offset 1 of pixel stride c + 2) of the full-size tensors.
                let xv = TensorView(base: xp.baseAddress! + 1, batch: n, height: h, width: w, channels: c, pixelStride: stride)
                let dxv = TensorView(base: dxp.baseAddress! + 1, batch: n, height: h, width: w, channels: c, pixelStride: stride)
                let mv = TensorView(base: mp.baseAddress! + 1, batch: n, height: h, width: w, channels: c, pixelStride: stride)
                let yv = TensorView(base: yp.baseAddress!, batch: n, height: h / 2, width: w / 2, channels: c)
                let dyv = TensorView(base: dyp.baseAddress!, batch: n, height: h / 2, width: w / 2, channels: c)
                MaxPool2x2.forward(input: xv, output: yv, on: pool)
                MaxPool2x2.backward(input: xv, dOutput: dyv, dInput: dxv, on: pool)
                Activation.relu.backward(output: xv, gradient: mv)
                Bias.accumulateGradient(dxv, into: dbp.baseAddress!, on: pool)
            }}}}}}
            return [y, dx, masked, db]
        }
        let one = run(threads: 1)
        for threads in [2, 3] { #expect(run(threads: threads) == one, "\(threads) threads") }
        // The references: ReLU's mask and the bias sums written out plainly.
        for i in 0..<start.count where i % (c + 2) >= 1 && i % (c + 2) <= c {
            #expect(one[2][i] == (x0[i] > 0 ? start[i] : 0))
        }
        for ch in 0..<c {
            var sum = 0.0
            for p in 0..<(n * h * w) { sum += Double(one[1][p * stride + 1 + ch]) }
            #expect(abs(one[3][ch] - (bias0[ch] + Float(sum))) <= 1e-6 * max(1, abs(Float(sum))))
        }
    }

    @Test func transposedConvolutionGradientsIntoSlice() {
        var g = GradientCheck()
        let (n, h, w, ci, co, stride, offset) = (2, 2, 3, 3, 2, 5, 0)
        var x = g.uniform(n * h * w * ci), k = g.uniform(4 * co * ci), b = g.uniform(co)
        var y = [Float](repeating: 0, count: n * 4 * h * w * stride)
        var dy = [Float](repeating: 0, count: y.count)
        var dx = [Float](repeating: 0, count: x.count), dk = [Float](repeating: 0, count: k.count), db = [Float](repeating: 0, count: co)
        var work = [Float](repeating: 0, count: ConvTranspose2x2.workspace(inputPixelsPerChunk: h * w, outChannels: co))
        let r = g.uniform(y.count)
        x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
        k.withUnsafeMutableBufferPointer { kp in b.withUnsafeMutableBufferPointer { bp in
        dy.withUnsafeMutableBufferPointer { dyp in dx.withUnsafeMutableBufferPointer { dxp in
        work.withUnsafeMutableBufferPointer { wp in
            let xv = TensorView(base: xp.baseAddress!, batch: n, height: h, width: w, channels: ci)
            let yv = TensorView(base: yp.baseAddress! + offset, batch: n, height: 2 * h, width: 2 * w, channels: co, pixelStride: stride)
            func loss() -> Double {
                ConvTranspose2x2.forward(input: xv, kernel: kp.baseAddress!, bias: bp.baseAddress!, output: yv,
                                         work: wp.baseAddress!, workCount: wp.count, on: .one)
                var s = 0.0
                for p in 0..<yv.pixels { for c in 0..<co { s += Double(r[p * stride + c]) * Double(yv.pixel(p)[c]) } }
                return s
            }
            _ = loss()
            // Reference: y[n, 2i+a, 2j+b, o] = sum_c x[n, i, j, c] K[a, b, o, c] + bias[o]
            for s in 0..<n { for i in 0..<h { for j in 0..<w { for a in 0..<2 { for bb in 0..<2 { for o in 0..<co {
                var acc = Double(bp[o])
                for c in 0..<ci { acc += Double(xp[((s * h + i) * w + j) * ci + c]) * Double(kp[((a * 2 + bb) * co + o) * ci + c]) }
                let got = yv.pixel((s * 2 * h + 2 * i + a) * 2 * w + 2 * j + bb)[o]
                #expect(abs(Double(got) - acc) < 1e-5)
            }}}}}}
            let dyv = TensorView(base: dyp.baseAddress! + offset, batch: n, height: 2 * h, width: 2 * w, channels: co, pixelStride: stride)
            for p in 0..<dyv.pixels { for c in 0..<co { dyv.pixel(p)[c] = r[p * stride + c] } }
            dk.withUnsafeMutableBufferPointer { dkp in db.withUnsafeMutableBufferPointer { dbp in
                ConvTranspose2x2.backward(input: xv, kernel: kp.baseAddress!, dOutput: dyv,
                                          dInput: TensorView(base: dxp.baseAddress!, batch: n, height: h, width: w, channels: ci),
                                          dKernel: dkp.baseAddress!, dBias: dbp.baseAddress!,
                                          work: wp.baseAddress!, workCount: wp.count, on: .one)
            }}
            #expect(GradientCheck.worstError(parameter: kp.baseAddress!, count: kp.count, analytic: dk, loss: loss) < Self.tolerance)
            #expect(GradientCheck.worstError(parameter: bp.baseAddress!, count: co, analytic: db, loss: loss) < Self.tolerance)
            #expect(GradientCheck.worstError(parameter: xp.baseAddress!, count: xp.count, analytic: Array(dxp), loss: loss) < Self.tolerance)
        }}}}}}}
    }

    @Test func maxPoolAndUpsampleGradients() {
        var g = GradientCheck()
        let (n, h, w, c) = (2, 4, 6, 3)
        // Distinct values, at least 0.05 apart within a window: no ties, no kink inside a step.
        var x = (0..<(n * h * w * c)).map { Float($0) * 0.05 }
        x.shuffle(using: &g.rng)
        var y = [Float](repeating: 0, count: n * h * w * c / 4)
        let r = g.uniform(y.count)
        var dx = [Float](repeating: 0.5, count: x.count)  // pooling accumulates: starts from 0.5
        x.withUnsafeMutableBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in dx.withUnsafeMutableBufferPointer { dxp in
            let xv = TensorView(base: xp.baseAddress!, batch: n, height: h, width: w, channels: c)
            let yv = TensorView(base: yp.baseAddress!, batch: n, height: h / 2, width: w / 2, channels: c)
            func loss() -> Double { MaxPool2x2.forward(input: xv, output: yv, on: .one); return weightedSum(yp.baseAddress!, r) }
            _ = loss()
            var rr = r
            rr.withUnsafeMutableBufferPointer { rp in
                MaxPool2x2.backward(input: xv, dOutput: TensorView(base: rp.baseAddress!, batch: n, height: h / 2, width: w / 2, channels: c),
                                    dInput: TensorView(base: dxp.baseAddress!, batch: n, height: h, width: w, channels: c), on: .one)
            }
            let analytic = dxp.map { $0 - 0.5 }
            #expect(GradientCheck.worstError(parameter: xp.baseAddress!, count: xp.count, analytic: analytic, step: 1e-3, samples: 200, loss: loss) < Self.tolerance)
        }}}

        // Upsampling is linear: exact finite differences.
        var u = g.uniform(n * 2 * 3 * c)
        var v = [Float](repeating: 0, count: u.count * 4)
        let ru = g.uniform(v.count)
        var du = [Float](repeating: 9, count: u.count)
        u.withUnsafeMutableBufferPointer { up in v.withUnsafeMutableBufferPointer { vp in du.withUnsafeMutableBufferPointer { dup in
            let uv = TensorView(base: up.baseAddress!, batch: n, height: 2, width: 3, channels: c)
            let vv = TensorView(base: vp.baseAddress!, batch: n, height: 4, width: 6, channels: c)
            func loss() -> Double { Upsample2x.forward(input: uv, output: vv); return weightedSum(vp.baseAddress!, ru) }
            _ = loss()
            #expect(vp[0] == up[0] && vp[c] == up[0] && vp[6 * c] == up[0] && vp[7 * c] == up[0])
            var rr = ru
            rr.withUnsafeMutableBufferPointer { rp in
                Upsample2x.backward(dOutput: TensorView(base: rp.baseAddress!, batch: n, height: 4, width: 6, channels: c), dInput: TensorView(base: dup.baseAddress!, batch: n, height: 2, width: 3, channels: c))
            }
            #expect(GradientCheck.worstError(parameter: up.baseAddress!, count: up.count, analytic: Array(dup), samples: 100, loss: loss) < Self.tolerance)
        }}}
    }
}
