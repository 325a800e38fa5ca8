import Dispatch
import Kernels
import Synchronization
import Testing
import Random
@testable import Model
@testable import Training

@Suite("U-Net model")
struct ModelTests {
    @Test func kerasLayerNamesAndParameterTable() throws {
        let c = UNetConfiguration(rows: 16, cols: 16, filters: 4, depth: 2, upsample: .nearest)
        #expect(c.layers.map(\.name) == [
            "input_layer", "conv2d", "conv2d_1", "max_pooling2d", "conv2d_2", "conv2d_3", "max_pooling2d_1",
            "conv2d_4", "conv2d_5", "up_sampling2d", "concatenate", "conv2d_6", "conv2d_7",
            "up_sampling2d_1", "concatenate_1", "conv2d_8", "conv2d_9", "conv2d_10",
        ])
        let t = UNetConfiguration(rows: 16, cols: 16, filters: 4, depth: 2, upsample: .transpose)
        #expect(t.layers.map(\.name).filter { $0.hasPrefix("conv2d_transpose") } == ["conv2d_transpose", "conv2d_transpose_1"])
        let table = t.parameterTable
        #expect(table.first(where: { $0.layer == "conv2d_transpose" })?.shape == [2, 2, 8, 16])
        #expect(table.first(where: { $0.layer == "conv2d_6" && $0.name == "kernel" })?.shape == [3, 3, 16, 8])  // 8 up + 8 skip
        #expect(c.parameterTable.first(where: { $0.layer == "conv2d_6" && $0.name == "kernel" })?.shape == [3, 3, 24, 8])  // 16 up + 8 skip
        // Contiguous, no gaps.
        var offset = 0
        for v in table { #expect(v.offset == offset); offset += v.count }
        #expect(offset == t.parameterCount)
        #expect(table[0].kerasName == "conv2d/kernel:0")
    }

    /// For a fixed dL/dprobabilities the parameter gradient of a batch is the sum of the images'
    /// gradients. With 3 images and an im2col workspace of one image of the widest layer, the
    /// convolutions run in several chunks, and the transient gradients live in the two shared
    /// scratch buffers: a chunk that reads or writes another image's rows, or a gradient
    /// overwritten before it is read, breaks the sum.
    @Test(arguments: [Upsampling.nearest, .transpose])
    func batchGradientIsTheSumOfImageGradients(upsample: Upsampling) throws {
        let c = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 3, upsample: upsample)
        let model = try UNet(configuration: c, seed: 3, maxBatch: 3)
        var rng = SeededGenerator(seed: 12)
        let plane = 256
        let images = (0..<(3 * plane)).map { _ in Float(rng.normal()) }
        let dp = (0..<(3 * plane)).map { _ in Float(rng.normal(standardDeviation: 0.01)) }
        func gradient(_ range: Range<Int>) -> [Float] {
            model.input.baseAddress!.update(from: Array(images[(range.lowerBound * plane)..<(range.upperBound * plane)]),
                                            count: range.count * plane)
            model.forward(batch: range.count)
            model.outputGradient.baseAddress!.update(from: Array(dp[(range.lowerBound * plane)..<(range.upperBound * plane)]),
                                                     count: range.count * plane)
            model.backward(batch: range.count)
            return model.gradients
        }
        let batch = gradient(0..<3)
        var sum = [Float](repeating: 0, count: batch.count)
        for i in 0..<3 { for (j, g) in gradient(i..<(i + 1)).enumerated() { sum[j] += g } }
        let scale = batch.map { abs($0) }.max()!
        let worst = zip(batch, sum).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5 * scale, "batch vs summed image gradients: \(worst) (largest \(scale))")
    }

    /// The thread count belongs to the model (`UNet(threads:)`), not to the process: models of
    /// 1, 2 and 3 threads training at the same time, on threads of their own, each end with
    /// exactly the weights it ends with alone, while the counts' results differ from each other
    /// (the sums split by threads round differently), so a count leaking from one model into
    /// another would show. The counts agree to rounding.
    @Test func modelsOfDifferentThreadCountsTrainSideBySide() throws {
        let data = ReliabilityTests.data()
        @Sendable func train(threads: Int) throws -> [Float] {
            let model = try UNet(configuration: ReliabilityTests.configuration, seed: 1, maxBatch: 3,
                                 threads: KernelThreads(threads))
            let trainer = Trainer(model: model, adam: Adam(parameterCount: model.parameters.count, learningRate: 3e-3),
                                  batchSize: 3, seed: 2)
            _ = try trainer.trainEpoch(data, epoch: 1)
            return model.parameters
        }
        let counts = [1, 2, 3]
        let alone = try counts.map { try train(threads: $0) }
        #expect(alone[0] != alone[1] && alone[0] != alone[2], "the thread counts split no sum differently")
        let scale = alone[0].map { abs($0) }.max()!
        for k in 1..<counts.count {
            let worst = zip(alone[0], alone[k]).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * scale, "\(counts[k]) threads vs 1: \(worst)")
        }
        let together = Mutex<[Int: [Float]]>([:])
        let failure = Mutex<(any Error)?>(nil)
        for _ in 0..<2 {  // twice, so each model also meets the others mid-epoch
            DispatchQueue.concurrentPerform(iterations: 2 * counts.count) { i in
                do {
                    let weights = try train(threads: counts[i % counts.count])
                    together.withLock { $0[i] = weights }
                } catch { failure.withLock { $0 = error } }
            }
            if let error = failure.withLock({ $0 }) { throw error }
            for (i, weights) in together.withLock({ $0 }) {
                #expect(weights == alone[i % counts.count], "\(counts[i % counts.count]) threads, run \(i): not its result alone")
            }
        }
    }

    @Test func theTutorialsModelHasItsKnownParameterCount() {
        // The tutorial's U-Net with Conv2DTranspose (64x80, 32 filters, depth 4) has 7,759,521
        // parameters in Keras' model.summary(); with UpSampling2D the decoder convolutions see
        // the wider concatenations (512 + 256 channels instead of 256 + 256, and so on).
        #expect(UNetConfiguration(upsample: .transpose).parameterCount == 7_759_521)
        #expect(UNetConfiguration(upsample: .nearest).parameterCount == 7_846_081)
    }

    @Test func multiplyAddsCountedByHand() {
        // 16x16, 2 filters, depth 1: conv 1->2 and 2->2 at 16x16, 2->4 and 4->4 at 8x8,
        // then 6->2 and 2->2 at 16x16 and the 1x1 2->1.
        let c = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 1)
        #expect(c.forwardMultiplyAdds == 256 * 9 * 2 + 256 * 9 * 4 + 64 * 9 * 8 + 64 * 9 * 16 + 256 * 9 * 12 + 256 * 9 * 4 + 256 * 2)
        // The tutorial's model (nearest upsampling): 2.17 GFLOP (multiply + add) forward, as issue 5 counts it.
        #expect(abs(Double(UNetConfiguration().forwardMultiplyAdds) * 2 / 1e9 - 2.17) < 0.01)
    }

    @Test func invalidConfigurationsSayWhy() {
        #expect(throws: UNetConfiguration.Invalid.self) { try UNetConfiguration(rows: 60, cols: 80).validate() }
        #expect(throws: UNetConfiguration.Invalid.self) { try UNetConfiguration(depth: 0).validate() }
        let a = UNetConfiguration(), b = UNetConfiguration(filters: 16, upsample: .transpose)
        #expect(a.differences(from: b) == ["filters 32 vs 16", "upsample nearest vs transpose"])
    }

    @Test func initialisationIsGlorotUniformAndSeeded() throws {
        let c = UNetConfiguration(rows: 16, cols: 16, filters: 4, depth: 2)
        let a = try UNet(configuration: c, seed: 1, maxBatch: 1), b = try UNet(configuration: c, seed: 1, maxBatch: 1)
        let other = try UNet(configuration: c, seed: 2, maxBatch: 1)
        #expect(a.parameters == b.parameters && a.parameters != other.parameters)
        for view in a.table {
            let values = a.parameters[view.offset..<(view.offset + view.count)]
            if view.name == "bias" { #expect(values.allSatisfy { $0 == 0 }); continue }
            guard view.count >= 64 else { continue }
            let fanIn = view.shape[0] * view.shape[1] * view.shape[2], fanOut = view.shape[0] * view.shape[1] * view.shape[3]
            let limit = Float((6.0 / Double(fanIn + fanOut)).squareRoot())
            #expect(values.allSatisfy { abs($0) <= limit })
            #expect(values.max()! > limit * 0.5 && values.min()! < -limit * 0.5)
        }
    }

    /// The whole model against finite differences, with the loss `L = sum_i r_i p_i` (fixed random
    /// r, Double sum): its gradients are large enough for Float central differences to resolve
    /// (the Dice loss divides by the batch's sums; its own gradient is checked exactly below).
    /// Step 3e-4; tolerance |analytic - numeric| <= 3e-3 + 2% of |numeric| on all but 10% (at least
    /// one) of the sampled parameters of every layer, and no sign error where the gradient is clearly
    /// non-zero. The absolute part is the Float rounding of the forward pass divided by the
    /// step; ReLU and max-pool kinks crossed by a step make a few central differences unreliable,
    /// which is why not 100%. The Keras golden tests check every gradient to 1e-4.
    @Test(arguments: Upsampling.allCases)
    func wholeModelGradientCheck(upsample: Upsampling) throws {
        let c = UNetConfiguration(rows: 8, cols: 12, filters: 2, depth: 2, upsample: upsample)
        let n = 2
        let model = try UNet(configuration: c, seed: 7, maxBatch: n)
        var rng = SeededGenerator(seed: 99)
        for view in model.table where view.name == "bias" {
            for i in view.offset..<(view.offset + view.count) { model.parameters[i] = Float(rng.uniform(0.05...0.2)) }
        }
        for i in 0..<model.input.count { model.input[i] = Float(rng.normal()) }
        let pixels = n * c.rows * c.cols
        let r = (0..<pixels).map { _ in Float(rng.uniform(-1...1)) }

        func loss() -> Double {
            model.forward(batch: n)
            return weightedSum(model.output.baseAddress!, r)
        }
        _ = loss()
        for i in 0..<pixels { model.outputGradient[i] = r[i] }
        model.backward(batch: n)
        let analytic = model.gradients

        for view in model.table {
            var good = 0, total = 0
            let stride = max(1, view.count / 12)
            for i in Swift.stride(from: view.offset, to: view.offset + view.count, by: stride) {
                let saved = model.parameters[i]
                let h: Float = 3e-4
                model.parameters[i] = saved + h; let up = loss()
                model.parameters[i] = saved - h; let down = loss()
                model.parameters[i] = saved
                let numeric = (up - down) / (2 * Double(h))
                let a = Double(analytic[i])
                total += 1
                if abs(numeric - a) <= 3e-3 + 2e-2 * abs(numeric) { good += 1 }
                if abs(numeric) > 5e-2 { #expect(numeric.sign == a.sign, "\(view.kerasName)[\(i - view.offset)]: \(a) vs \(numeric)") }
            }
            #expect(good >= total - max(1, total / 10), "\(view.kerasName): \(good)/\(total) within tolerance")
        }
    }

    /// The Dice loss's gradient in closed form against central differences in Double.
    @Test func diceGradientMatchesFiniteDifferences() {
        var rng = SeededGenerator(seed: 5)
        var p = (0..<50).map { _ in Float(rng.uniform(0.01...0.99)) }
        let t = (0..<50).map { i -> Float in i % 3 == 0 ? 1 : 0 }
        var g = [Float](repeating: 0, count: 50)
        p.withUnsafeBufferPointer { pp in t.withUnsafeBufferPointer { tp in g.withUnsafeMutableBufferPointer { gp in
            DiceLoss.gradient(predictions: pp, targets: tp, sums: DiceLoss.sums(predictions: pp, targets: tp), into: gp)
        }}}
        func loss(_ q: [Double]) -> Double {
            var (i, sp, st) = (0.0, 0.0, 0.0)
            for k in 0..<q.count { i += q[k] * Double(t[k]); sp += q[k]; st += Double(t[k]) }
            return -(2 * i + 1) / (sp + st + 1)
        }
        let base = p.map(Double.init)
        for k in 0..<50 {
            var up = base, down = base
            up[k] += 1e-6; down[k] -= 1e-6
            let numeric = (loss(up) - loss(down)) / 2e-6
            #expect(abs(numeric - Double(g[k])) <= 1e-6 + 1e-4 * abs(numeric))
        }
        // And the value: exactly the tutorial's formula.
        p.withUnsafeMutableBufferPointer { pp in t.withUnsafeBufferPointer { tp in
            #expect(abs(DiceLoss.sums(predictions: UnsafeBufferPointer(pp), targets: tp).loss - loss(base)) < 1e-12)
        }}
    }

    @Test func kaggleScorePerImage() {
        let p: [Float] = [0.9, 0.9, 0.1, 0.1,   0.1, 0.1, 0.1, 0.1,   0.9, 0.1, 0.1, 0.1,   0.6, 0.6, 0.6, 0.1]
        let t: [Float] = [1, 0, 0, 0,           0, 0, 0, 0,           0, 0, 0, 0,           1, 1, 1, 1]
        let scores = p.withUnsafeBufferPointer { pp in t.withUnsafeBufferPointer { tp in
            KaggleScore.perImage(predictions: pp, targets: tp, pixels: 4)
        }}
        #expect(scores == [2.0 / 3.0, 1, 0, 6.0 / 7.0])  // partial, both empty, false positive, 3 of 4
    }
}
