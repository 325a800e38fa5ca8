import Model
import Random

/// What one pass over a data set measured.
public struct PassMetrics: Sendable {
    /// Mean of the per-batch losses, weighted by batch size (as Keras reports `loss`).
    public var loss: Double
    public var dice: Double { -loss }
    /// Mean per-image Kaggle score (evaluation only; NaN during training).
    public var kaggle: Double
    public var images: Int
    public var seconds: Double
    public var imagesPerSecond: Double { seconds > 0 ? Double(images) / seconds : 0 }
}

/// The training loop of one process: batches from a seeded permutation per epoch, forward, Dice
/// loss, backward, one Adam step over the whole parameter buffer. Buffers are sized once for the
/// batch size: a step allocates nothing.
public final class Trainer {
    public let model: UNet
    public var adam: Adam
    public let batchSize: Int
    public let seed: UInt64
    private var targets: [Float]

    public init(model: UNet, adam: Adam, batchSize: Int, seed: UInt64) {
        precondition(batchSize >= 1 && batchSize <= model.maxBatch)
        self.model = model
        self.adam = adam
        self.batchSize = batchSize
        self.seed = seed
        targets = [Float](repeating: 0, count: batchSize * model.configuration.rows * model.configuration.cols)
    }

    /// The permutation of `count` samples for `epoch` (Fisher-Yates on our own generator, so it
    /// is the same on every platform and every rank).
    public static func permutation(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<count)
        var rng = SeededGenerator(seed: seed, stream: 0x5348_5546, UInt64(epoch))
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, rng.int(in: 0...i)) }
        }
        return order
    }

    /// Copies samples `indices` into the model's input and the targets buffer.
    private func load<Indices: Collection<Int>>(_ data: Samples, _ indices: Indices) {
        let plane = data.rows * data.cols
        let input = model.input
        data.images.withUnsafeBufferPointer { images in
            for (b, i) in indices.enumerated() {
                (input.baseAddress! + b * plane).update(from: images.baseAddress! + i * plane, count: plane)
            }
        }
        if !data.masks.isEmpty {
            data.masks.withUnsafeBufferPointer { masks in
                targets.withUnsafeMutableBufferPointer { t in
                    for (b, i) in indices.enumerated() {
                        (t.baseAddress! + b * plane).update(from: masks.baseAddress! + i * plane, count: plane)
                    }
                }
            }
        }
    }

    /// One training step on `indices`: returns the batch's Dice sums (before the update).
    @discardableResult
    public func step(_ data: Samples, _ indices: ArraySlice<Int>) -> DiceLoss.Sums {
        let n = indices.count
        let pixels = n * data.rows * data.cols
        load(data, indices)
        model.forward(batch: n)
        let sums = targets.withUnsafeBufferPointer { t in
            let p = UnsafeBufferPointer(rebasing: model.output[0..<pixels])
            let t = UnsafeBufferPointer(rebasing: t[0..<pixels])
            let sums = DiceLoss.sums(predictions: p, targets: t)
            DiceLoss.gradient(predictions: p, targets: t, sums: sums,
                              into: UnsafeMutableBufferPointer(rebasing: model.outputGradient[0..<pixels]))
            return sums
        }
        model.backward(batch: n)
        adam.update(parameters: &model.parameters, gradients: model.gradients)
        return sums
    }

    /// One epoch over `data` in the epoch's permutation; `progress(done, total, runningLoss)` after each step.
    public func trainEpoch(_ data: Samples, epoch: Int, progress: ((Int, Int, Double) -> Void)? = nil) -> PassMetrics {
        let order = Self.permutation(count: data.count, seed: seed, epoch: epoch)
        let start = monotonicSeconds()
        var weighted = 0.0
        var done = 0
        for b in stride(from: 0, to: order.count, by: batchSize) {
            let batch = order[b..<min(b + batchSize, order.count)]
            let sums = step(data, batch)
            weighted += sums.loss * Double(batch.count)
            done += batch.count
            progress?(done, order.count, weighted / Double(done))
        }
        return PassMetrics(loss: weighted / Double(max(done, 1)), kaggle: .nan, images: done,
                           seconds: monotonicSeconds() - start)
    }

    /// Loss (per-batch Dice averaged as Keras does), Dice and mean Kaggle score on `data`.
    public func evaluate(_ data: Samples) -> PassMetrics {
        let start = monotonicSeconds()
        var weighted = 0.0, kaggle = 0.0
        let plane = data.rows * data.cols
        for b in stride(from: 0, to: data.count, by: batchSize) {
            let batch = b..<min(b + batchSize, data.count)
            load(data, batch)
            model.forward(batch: batch.count)
            let pixels = batch.count * plane
            targets.withUnsafeBufferPointer { t in
                let p = UnsafeBufferPointer(rebasing: model.output[0..<pixels])
                let t = UnsafeBufferPointer(rebasing: t[0..<pixels])
                weighted += DiceLoss.sums(predictions: p, targets: t).loss * Double(batch.count)
                kaggle += KaggleScore.perImage(predictions: p, targets: t, pixels: plane).reduce(0, +)
            }
        }
        let n = Double(max(data.count, 1))
        return PassMetrics(loss: weighted / n, kaggle: kaggle / n, images: data.count, seconds: monotonicSeconds() - start)
    }

    /// Probabilities for every sample of `data`, `count x rows x cols`.
    public func predict(_ data: Samples) -> [Float] {
        Self.predict(model: model, data, batchSize: batchSize)
    }

    public static func predict(model: UNet, _ data: Samples, batchSize: Int) -> [Float] {
        let plane = data.rows * data.cols
        var out = [Float](repeating: 0, count: data.count * plane)
        let batchSize = min(batchSize, model.maxBatch)
        for b in stride(from: 0, to: data.count, by: batchSize) {
            let n = min(batchSize, data.count - b)
            data.images.withUnsafeBufferPointer { images in
                model.input.baseAddress!.update(from: images.baseAddress! + b * plane, count: n * plane)
            }
            model.forward(batch: n)
            out.withUnsafeMutableBufferPointer { o in
                (o.baseAddress! + b * plane).update(from: model.output.baseAddress!, count: n * plane)
            }
        }
        return out
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Seconds on the monotonic clock.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
