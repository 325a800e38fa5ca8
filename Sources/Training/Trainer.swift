import DataIO
import Distributed
import Kernels
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

/// How far an epoch got: the steps done and the running sums of its metrics. A checkpoint written
/// in the middle of an epoch (on SIGTERM) records it, and `trainEpoch(from:)` continues from it,
/// so an epoch interrupted and resumed gives the same weights and figures as one never
/// interrupted.
public struct EpochProgress: Equatable, Sendable {
    /// Global batches done.
    public var step: Int
    /// Sum of the batch losses weighted by batch size, and the images they cover.
    public var weightedLoss: Double
    public var images: Int
    /// Training seconds spent so far (over the interrupted runs too).
    public var seconds: Double

    public init(step: Int = 0, weightedLoss: Double = 0, images: Int = 0, seconds: Double = 0) {
        self.step = step
        self.weightedLoss = weightedLoss
        self.images = images
        self.seconds = seconds
    }

    public var metrics: PassMetrics {
        PassMetrics(loss: weightedLoss / Double(max(images, 1)), kaggle: .nan, images: images, seconds: seconds)
    }
}

/// The phases of a training step, in order: the one list that the timeline, the `--verbose`
/// lines, the per-epoch totals and the help texts all use.
public enum StepPhase: Int, CaseIterable, Sendable {
    /// Copying the rank's share of the batch into the model's input (a memory copy: the data set
    /// is in memory).
    case load
    case forward
    /// The Dice sums of the rank's share.
    case loss
    /// The allreduce of the Dice sums and the stop flag: 4 numbers, so its time is the wait for
    /// the slowest rank's forward pass, not transfer.
    case wait
    /// dL/dprobabilities from the global sums.
    case lossGradient
    case backward
    /// The allreduce of all gradients (one buffer): the transfer, plus any wait for a rank whose
    /// backward pass is slower.
    case allreduce
    /// The finiteness check and the Adam update.
    case adam

    /// The phase's name in the timeline and the `--verbose` lines.
    public var name: String { self == .lossGradient ? "loss_gradient" : "\(self)" }

    /// "load, forward, ..., adam" (for help texts).
    public static var names: String { allCases.map(\.name).joined(separator: ", ") }
}

/// The monotonic clock readings (seconds) that bound the phases of one training step, in
/// order: `start` (before loading the batch), `loaded`, `forwarded`, `lossComputed` (the Dice
/// sums of this rank's share), `synchronized` (the sums allreduced: the wait for the slowest
/// rank's forward pass), `lossGradient`, `backwarded`, `reduced` (the gradients allreduced) and
/// `end` (after the Adam update). A rank whose share is empty has zero-length compute phases.
public struct StepClock: Equatable, Sendable {
    public var start = 0.0
    public var loaded = 0.0
    public var forwarded = 0.0
    public var lossComputed = 0.0
    public var synchronized = 0.0
    public var lossGradient = 0.0
    public var backwarded = 0.0
    public var reduced = 0.0
    public var end = 0.0

    public init() {}

    /// The readings that open and close `phase`.
    public func span(_ phase: StepPhase) -> (start: Double, end: Double) {
        switch phase {
        case .load: (start, loaded)
        case .forward: (loaded, forwarded)
        case .loss: (forwarded, lossComputed)
        case .wait: (lossComputed, synchronized)
        case .lossGradient: (synchronized, lossGradient)
        case .backward: (lossGradient, backwarded)
        case .allreduce: (backwarded, reduced)
        case .adam: (reduced, end)
        }
    }

    public func seconds(_ phase: StepPhase) -> Double {
        let span = span(phase)
        return span.end - span.start
    }

    public var total: Double { end - start }
}

/// Where an epoch is after a step (what `trainEpoch` reports to its `progress` callback).
public struct StepProgress: Sendable {
    public var epoch: Int
    /// Global batches done in this epoch (counting those before a resume), of `steps`.
    public var step: Int
    public var steps: Int
    /// Images done in this epoch (counting those before a resume), of `totalImages`.
    public var images: Int
    public var totalImages: Int
    /// Images this epoch had done before this call started it (a resume in the middle of the
    /// epoch): rates over this process's time count only `imagesThisRun`.
    public var resumedImages: Int
    /// The monotonic clock reading when this call began the epoch.
    public var started: Double
    /// The last global batch's loss, and the epoch's running loss (weighted by batch size).
    public var batchLoss: Double
    public var loss: Double
    public var dice: Double { -loss }
    /// The last step's phases.
    public var clock: StepClock

    /// Images this process trained in this epoch (not those done before a resume).
    public var imagesThisRun: Int { images - resumedImages }

    /// This process's throughput in the epoch up to `now` (a monotonic clock reading).
    public func imagesPerSecond(now: Double) -> Double {
        let elapsed = now - started
        return elapsed > 0 ? Double(imagesThisRun) / elapsed : 0
    }

    /// Seconds until the epoch's last step at this process's throughput (nil before any).
    public func secondsLeft(now: Double) -> Double? {
        let rate = imagesPerSecond(now: now)
        return rate > 0 ? Double(totalImages - images) / rate : nil
    }
}

/// An epoch ran to its end, or stopped after a step because a rank asked to stop (a signal).
public enum EpochOutcome: Sendable {
    case completed(PassMetrics)
    case stopped(EpochProgress)

    /// The epoch's figures when it completed, nil when it stopped.
    public var completed: PassMetrics? {
        if case .completed(let metrics) = self { return metrics }
        return nil
    }
}

/// A training failure every rank detects in the same state (so every rank reports it).
public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The training loop, data-parallel over a `Communicator` (one rank is the ordinary one-process
/// loop; there is no second code path):
///
/// - every epoch has one permutation from the seed and the epoch, the same on every rank;
/// - every global batch of `batchSize` images is split into contiguous shares that differ by at
///   most one image (`Communicator.share`); every rank takes the same number of steps;
/// - the step allreduces the Dice loss's three sums after the forward pass, backpropagates with
///   the global sums (so each rank's gradient is its share of the one-process gradient), sums the
///   gradients with ONE allreduce over the contiguous gradient buffer, and every rank applies the
///   same Adam step. The result is the one-process step on the global batch, up to the order of
///   floating-point summation.
///
/// Buffers are sized once: a step allocates nothing.
public final class Trainer {
    public let model: UNet
    public var adam: Adam
    /// Images per global batch (over all ranks).
    public let batchSize: Int
    public let seed: UInt64
    public let communicator: any Communicator
    /// Seconds spent in the gradient allreduce since the trainer was made (for benchmarks).
    public private(set) var allreduceSeconds = 0.0
    /// Seconds in the Dice sums and the loss gradient, and in the update (the gradients' finiteness
    /// check and Adam), for benchmarks.
    public private(set) var lossSeconds = 0.0
    public private(set) var adamSeconds = 0.0
    /// The last step's phases (clock readings).
    public private(set) var lastStep = StepClock()
    /// When set, every step, validation pass and replica check is recorded in it (the
    /// `--timeline` trace); `trainEpoch` reserves room for its steps first, so a step still
    /// allocates nothing.
    public var timeline: Timeline? = nil
    /// The epoch and 1-based step the next `step` records itself under in the timeline.
    private var position = (epoch: 0, step: 0)
    /// Polled at every step on every rank (e.g. "a SIGTERM arrived"); when it is true on any
    /// rank, every rank stops after the same step (the request rides along with the step's Dice
    /// sums allreduce, so it costs no extra collective).
    public var stopRequested: (@Sendable () -> Bool)? = nil
    /// Set by the last `step`: some rank asked to stop.
    public private(set) var stopAgreed = false
    /// Called with the summed gradients before the Adam step (tests use it to inject a NaN).
    public var gradientHook: ((UnsafeMutableBufferPointer<Float>) -> Void)? = nil
    private var targets: [Float]
    /// Dice sums (and the Kaggle sum when evaluating) on their way through an allreduce.
    private var reduction = [Double](repeating: 0, count: 4)

    /// The largest share of a global batch of `batchSize` that one of `ranks` ranks takes: the
    /// `maxBatch` each rank's model needs.
    public static func localBatchSize(_ batchSize: Int, ranks: Int) -> Int {
        (batchSize + ranks - 1) / ranks
    }

    public init(model: UNet, adam: Adam, batchSize: Int, seed: UInt64,
                communicator: any Communicator = SoloCommunicator()) {
        precondition(batchSize >= 1 && Self.localBatchSize(batchSize, ranks: communicator.size) <= model.maxBatch)
        self.model = model
        self.adam = adam
        self.batchSize = batchSize
        self.seed = seed
        self.communicator = communicator
        targets = [Float](repeating: 0, count: model.maxBatch * model.configuration.rows * model.configuration.cols)
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

    /// This rank's share of a global batch.
    private func localShare<C: RandomAccessCollection<Int>>(_ batch: C) -> C.SubSequence {
        let mine = communicator.share(of: batch.count)
        let from = batch.index(batch.startIndex, offsetBy: mine.lowerBound)
        return batch[from..<batch.index(from, offsetBy: mine.count)]
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

    /// Sums `values` (up to 4) over the ranks through the preallocated reduction buffer.
    private func allreduce(_ values: (Double, Double, Double, Double)) throws -> (Double, Double, Double, Double) {
        guard communicator.size > 1 else { return values }
        reduction[0] = values.0; reduction[1] = values.1; reduction[2] = values.2; reduction[3] = values.3
        try reduction.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
        return (reduction[0], reduction[1], reduction[2], reduction[3])
    }

    /// One training step on the global batch `indices` (this rank computes its share): returns
    /// the global batch's Dice sums (before the update).
    @discardableResult
    public func step(_ data: Samples, _ indices: ArraySlice<Int>) throws -> DiceLoss.Sums {
        var clock = StepClock()
        clock.start = monotonicSeconds()
        let local = localShare(indices)
        let n = local.count
        let pixels = n * data.rows * data.cols
        load(data, local)
        clock.loaded = monotonicSeconds()
        var sums = DiceLoss.Sums()
        if n > 0 {
            model.forward(batch: n)
            clock.forwarded = monotonicSeconds()
            sums = targets.withUnsafeBufferPointer { t in
                DiceLoss.sums(predictions: UnsafeBufferPointer(rebasing: model.output[0..<pixels]),
                              targets: UnsafeBufferPointer(rebasing: t[0..<pixels]))
            }
            clock.lossComputed = monotonicSeconds()
        } else {
            clock.forwarded = clock.loaded
            clock.lossComputed = clock.loaded
        }
        let stop: Double = stopRequested?() == true ? 1 : 0
        let g = try allreduce((sums.intersection, sums.predictions, sums.targets, stop))
        clock.synchronized = monotonicSeconds()
        sums = DiceLoss.Sums(intersection: g.0, predictions: g.1, targets: g.2)
        stopAgreed = g.3 > 0
        guard sums.loss.isFinite else {
            throw TrainingError("the loss is \(sums.loss) at Adam step \(adam.step + 1): training diverged (try a lower --lr)")
        }
        if n > 0 {
            targets.withUnsafeBufferPointer { t in
                DiceLoss.gradient(predictions: UnsafeBufferPointer(rebasing: model.output[0..<pixels]),
                                  targets: UnsafeBufferPointer(rebasing: t[0..<pixels]), sums: sums,
                                  into: UnsafeMutableBufferPointer(rebasing: model.outputGradient[0..<pixels]))
            }
            clock.lossGradient = monotonicSeconds()
            model.backward(batch: n)
        } else {
            // A share of nothing (the last partial batch has fewer images than ranks): this
            // rank contributes zero gradients to the sum.
            clock.lossGradient = clock.synchronized
            model.gradients.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
        }
        clock.backwarded = monotonicSeconds()
        if communicator.size > 1 {
            try model.gradients.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
            clock.reduced = monotonicSeconds()
        } else {
            clock.reduced = clock.backwarded
        }
        // The finiteness check counts as part of the update.
        if let gradientHook { model.gradients.withUnsafeMutableBufferPointer { gradientHook($0) } }
        // Every rank holds the same summed gradients, so every rank decides alike: a NaN or an
        // infinity stops training before it reaches the weights (and any checkpoint).
        if let bad = model.gradients.withUnsafeBufferPointer({ firstNonFinite($0) }) {
            let view = model.configuration.parameterTable.first { $0.offset <= bad && bad < $0.offset + $0.count }
            throw TrainingError("the gradient of \(view?.kerasName ?? "parameter \(bad)") is \(model.gradients[bad]) at Adam step \(adam.step + 1)"
                + " (loss \(sums.loss)): training diverged, the weights were not updated (try a lower --lr)")
        }
        adam.update(parameters: &model.parameters, gradients: model.gradients)
        clock.end = monotonicSeconds()
        lastStep = clock
        lossSeconds += clock.seconds(.loss) + clock.seconds(.lossGradient)
        allreduceSeconds += clock.seconds(.allreduce)
        adamSeconds += clock.seconds(.adam)
        timeline?.record(clock, epoch: position.epoch, step: position.step)
        return sums
    }

    /// One epoch over `data` in the epoch's permutation; `progress` after each step (on every
    /// rank).
    ///
    /// Starts at `resumed.step` when given (an epoch interrupted by a stop request), and returns
    /// `.stopped` after the first step at which some rank's `stopRequested` was true.
    public func trainEpoch(_ data: Samples, epoch: Int, from resumed: EpochProgress = EpochProgress(),
                           progress: ((StepProgress) -> Void)? = nil) throws -> EpochOutcome {
        let order = Self.permutation(count: data.count, seed: seed, epoch: epoch)
        let steps = (order.count + batchSize - 1) / batchSize
        precondition(resumed.step <= steps, "an epoch of \(steps) steps cannot resume at step \(resumed.step)")
        timeline?.reserve(steps: steps - resumed.step)
        let start = monotonicSeconds()
        var state = resumed
        func measured() -> EpochProgress {
            var s = state
            s.seconds += monotonicSeconds() - start
            return s
        }
        while state.step < steps {
            let b = state.step * batchSize
            let batch = order[b..<min(b + batchSize, order.count)]
            communicator.annotate(CollectiveContext("training", epoch: epoch, step: state.step + 1, of: steps,
                                                    adamStep: adam.step + 1))
            position = (epoch, state.step + 1)
            let sums = try step(data, batch)
            state.weightedLoss += sums.loss * Double(batch.count)
            state.images += batch.count
            state.step += 1
            progress?(StepProgress(epoch: epoch, step: state.step, steps: steps, images: state.images,
                                   totalImages: order.count, resumedImages: resumed.images, started: start, batchLoss: sums.loss,
                                   loss: state.weightedLoss / Double(state.images), clock: lastStep))
            if stopAgreed && state.step < steps { return .stopped(measured()) }
        }
        position = (epoch, 0)
        return .completed(measured().metrics)
    }

    /// Loss (per-batch Dice averaged over batches weighted by size, as Keras reports it), Dice
    /// and mean Kaggle score on `data`, which every rank holds: each global batch is sharded
    /// across the ranks and its sums reduced, so the figures do not depend on the rank count.
    public func evaluate(_ data: Samples) throws -> PassMetrics {
        let start = monotonicSeconds()
        var weighted = 0.0, kaggle = 0.0
        let plane = data.rows * data.cols
        let steps = (data.count + batchSize - 1) / batchSize
        for b in stride(from: 0, to: data.count, by: batchSize) {
            communicator.annotate(CollectiveContext("evaluation", step: b / batchSize + 1, of: steps))
            let batch = b..<min(b + batchSize, data.count)
            let local = localShare(batch)
            var sums = DiceLoss.Sums(), localKaggle = 0.0
            if !local.isEmpty {
                load(data, local)
                model.forward(batch: local.count)
                let pixels = local.count * plane
                targets.withUnsafeBufferPointer { t in
                    let p = UnsafeBufferPointer(rebasing: model.output[0..<pixels])
                    let t = UnsafeBufferPointer(rebasing: t[0..<pixels])
                    sums = DiceLoss.sums(predictions: p, targets: t)
                    localKaggle = KaggleScore.perImage(predictions: p, targets: t, pixels: plane).reduce(0, +)
                }
            }
            let g = try allreduce((sums.intersection, sums.predictions, sums.targets, localKaggle))
            weighted += DiceLoss.Sums(intersection: g.0, predictions: g.1, targets: g.2).loss * Double(batch.count)
            kaggle += g.3
        }
        let n = Double(max(data.count, 1))
        let end = monotonicSeconds()
        timeline?.record(.validation, epoch: position.epoch, from: start, to: end)
        return PassMetrics(loss: weighted / n, kaggle: kaggle / n, images: data.count, seconds: end - start)
    }

    /// Probabilities for every sample of `data`, `count x rows x cols` (one process).
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

    /// Prediction sharded over the ranks: `images` (`count x plane`, normalised) is read on
    /// `root` only; every rank predicts a contiguous share (scattered from the root), and the
    /// root receives all probabilities in the original order (other ranks get an empty array).
    public static func predict(model: UNet, images: [Float], count: Int, batchSize: Int,
                               communicator comm: any Communicator, root: Int = 0) throws -> [Float] {
        let plane = model.configuration.rows * model.configuration.cols
        let counts = (0..<comm.size).map { share(of: count, rank: $0, size: comm.size).count * plane }
        var local = [Float](repeating: 0, count: counts[comm.rank])
        try images.withUnsafeBufferPointer { s in
            try local.withUnsafeMutableBufferPointer { try comm.scatter(s, into: $0, counts: counts, root: root) }
        }
        let mine = predict(model: model, Samples(rows: model.configuration.rows, cols: model.configuration.cols, images: local),
                           batchSize: batchSize)
        var all = [Float](repeating: 0, count: comm.rank == root ? count * plane : 0)
        try mine.withUnsafeBufferPointer { s in
            try all.withUnsafeMutableBufferPointer { try comm.gather(s, into: $0, counts: counts, root: root) }
        }
        return all
    }

    /// Makes every rank's weights and Adam state the root's (after the root initialised or
    /// loaded them).
    public func broadcastState(root: Int = 0) throws {
        guard communicator.size > 1 else { return }
        try communicator.broadcast(&model.parameters, root: root)
        try communicator.broadcast(&adam.m, root: root)
        try communicator.broadcast(&adam.v, root: root)
        adam.step = try communicator.broadcast(adam.step, root: root)
    }

    /// Checks that every rank holds the same weights: a cheap fingerprint of the parameter
    /// buffer, compared with the root's. Throws on every rank, naming the ranks that differ.
    public func checkReplicas(root: Int = 0) throws {
        guard communicator.size > 1 else { return }
        let start = monotonicSeconds()
        defer { timeline?.record(.replicaCheck, epoch: position.epoch, from: start, to: monotonicSeconds()) }
        let mine = Self.fingerprint(model.parameters)
        let reference = try communicator.broadcast(mine, root: root)
        var differs = [Double](repeating: 0, count: communicator.size)
        differs[communicator.rank] = mine == reference ? 0 : 1
        try communicator.allreduceSum(&differs)
        let bad = differs.indices.filter { differs[$0] != 0 }
        guard bad.isEmpty else {
            let names = bad.map { "rank \($0)" }.joined(separator: ", ")
            throw TrainingError("replicas out of step after Adam step \(adam.step): the weights of \(names) differ from rank \(root)'s")
        }
    }

    /// A 64-bit fingerprint of a Float buffer: FNV-1a of its bytes, as checkpoints store it.
    public static func fingerprint(_ values: [Float]) -> UInt64 { FNV1a.hash64(values) }
}

