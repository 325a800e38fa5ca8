import Distributed
import Kernels
import Model

/// Where a run keeps what it saves, in the order `TrainingRun` calls it: the latest state, the
/// best one, then the metrics log's row (so the log is never ahead of the checkpoints). Rank 0's
/// alone (`unet train`: HDF5 checkpoints and `unet.csv`, `Checkpoint.RunFiles`).
public protocol RunStore {
    func saveLatest(parameters: [Float], state: TrainingState) throws
    func saveBest(parameters: [Float], state: TrainingState) throws
    /// The log begins as the history the run starts from (nothing for a fresh run).
    func startLog(with history: [EpochRecord], learningRate: Float) throws
    func appendLog(_ record: EpochRecord, learningRate: Float) throws
}

/// One training run, data-parallel over the trainer's communicator: the model and Adam (in the
/// `Trainer`), the normalisation and seed it was started with, the history of its epochs, the
/// best score so far and where it is (epochs done, and the steps of the next one a stopped run
/// already trained). It owns the run's policy: resuming from a saved state, the epoch (steps,
/// replica check, validation), which epoch is the best (the lowest validation loss, the
/// training loss without validation), the order of the saves, and the position saved when the
/// run stops on request in the middle of an epoch. What it prints, and which files it writes,
/// are its caller's (`unet train`).
///
/// Every rank makes the same run and calls the same methods in the same order (they hold
/// collectives); only `root` gives a store and saves.
public final class TrainingRun {
    public let trainer: Trainer
    public var model: UNet { trainer.model }
    public let learningRate: Float
    /// `(pixel - mean) / std`: the training set's, or the resumed state's (rank 0's figures).
    public let normalisation: (mean: Float, std: Float)
    /// Epochs completed.
    public private(set) var epochsDone: Int
    /// How far the next epoch got before a stop (zero at an epoch boundary).
    public private(set) var position: EpochProgress
    public private(set) var history: [EpochRecord]
    /// The best epoch's score (see `score`); nil before the first epoch.
    public private(set) var best: Double?
    private let store: (any RunStore)?

    /// Where a run starts, the same on every rank: the seed (a resumed state's own, so the
    /// shuffles continue as they began; else the one asked for), the epochs done and the
    /// position in the next one. Before the model is made (its initialisation takes the seed).
    public struct Start: Sendable {
        public var seed: UInt64
        public var epochsDone: Int
        public var position: EpochProgress

        /// Rank 0's `resuming` state (nil for a fresh run, and on the other ranks) decides; a
        /// broadcast from rank 0.
        public static func agreed(seed requested: UInt64, resuming state: TrainingState?,
                                  over comm: any Communicator) throws -> Start {
            let header = try comm.broadcast((Int64(state?.epoch ?? 0), state?.seed ?? requested, Int64(state?.epochStep ?? 0),
                                             state?.epochLossSum ?? 0, Int64(state?.epochImages ?? 0),
                                             state?.epochSeconds ?? 0), root: 0)
            return Start(seed: header.1, epochsDone: Int(header.0),
                         position: EpochProgress(step: Int(header.2), weightedLoss: header.3, images: Int(header.4),
                                                 seconds: header.5))
        }
    }

    /// A run on `trainer` (made with `start.seed`, its model freshly initialised, its Adam new)
    /// from `start`, continuing, with `resumed` (rank 0's), from a saved state and its weights:
    /// rank 0 broadcasts them, so every rank begins alike. The history and the best score are
    /// rank 0's (the others neither save nor report).
    public init(trainer: Trainer, start: Start, learningRate: Float, normalisation: (mean: Float, std: Float),
                resumed: (parameters: [Float], state: TrainingState)?, store: (any RunStore)?) throws {
        precondition(trainer.seed == start.seed)
        self.trainer = trainer
        self.learningRate = learningRate
        self.normalisation = normalisation
        self.store = store
        epochsDone = start.epochsDone
        position = start.position
        history = resumed?.state.history ?? []
        best = resumed?.state.bestScore
        if let resumed {
            trainer.model.parameters = resumed.parameters
            (trainer.adam.m, trainer.adam.v, trainer.adam.step) = (resumed.state.adamM, resumed.state.adamV,
                                                                   resumed.state.adamStep)
        }
        try trainer.broadcastState()
        try store?.startLog(with: history, learningRate: resumed?.state.learningRate ?? learningRate)
    }

    /// The state to save now: the one place a `TrainingState` is made.
    public func state() -> TrainingState {
        var state = TrainingState(epoch: epochsDone, adamStep: trainer.adam.step, adamM: trainer.adam.m,
                                  adamV: trainer.adam.v, learningRate: learningRate, mean: normalisation.mean,
                                  std: normalisation.std, seed: trainer.seed, bestScore: best, history: history)
        (state.epochStep, state.epochLossSum, state.epochImages, state.epochSeconds) =
            (position.step, position.weightedLoss, position.images, position.seconds)
        return state
    }

    /// Saves the initial state (no epoch trained) as the latest and the best: to start another
    /// framework from these weights, or to resume from later.
    public func saveInitial() throws {
        try store?.saveLatest(parameters: model.parameters, state: state())
        try store?.saveBest(parameters: model.parameters, state: state())
    }

    /// What decides the best epoch: the validation loss, the training loss without validation.
    public static func score(_ record: EpochRecord) -> Double { record.valLoss ?? record.loss }

    /// An epoch that ran to its end: its record, whether it is the best so far (and so was saved
    /// as such), its validation pass, and the seconds the saves took (rank 0).
    public struct EpochEnd {
        public var record: EpochRecord
        public var improved: Bool
        public var validation: PassMetrics?
        public var saveSeconds: Double
    }

    public enum EpochResult {
        case completed(EpochEnd)
        /// Stopped on request after a step; the position was saved as the latest state.
        case stopped(EpochProgress)
    }

    /// Trains epoch `epochsDone + 1` over `trainSet` (from the saved position, the first time
    /// after a stop), calling `progress` after every step on every rank; then checks that the
    /// replicas agree and evaluates `validationSet` (when not empty); rank 0 records the epoch
    /// and saves the latest state, the best one when it improved, and the log's row.
    public func trainEpoch(_ trainSet: Samples, validation validationSet: Samples,
                           progress: ((StepProgress) -> Void)? = nil) throws -> EpochResult {
        let epoch = epochsDone + 1
        let outcome = try trainer.trainEpoch(trainSet, epoch: epoch, from: position, progress: progress)
        let metrics: PassMetrics
        switch outcome {
        case .completed(let m):
            metrics = m
            position = EpochProgress()
        case .stopped(let at):
            // Every rank stops after the same step; rank 0 saves where.
            position = at
            try timed(epoch) { try store?.saveLatest(parameters: model.parameters, state: state()) }
            return .stopped(at)
        }
        try trainer.checkReplicas()
        let validation = validationSet.count > 0 ? try trainer.evaluate(validationSet) : nil
        let record = EpochRecord(epoch: epoch, loss: metrics.loss, dice: metrics.dice,
                                 valLoss: validation?.loss, valDice: validation?.dice, valKaggle: validation?.kaggle,
                                 imagesPerSecond: metrics.imagesPerSecond,
                                 seconds: metrics.seconds + (validation?.seconds ?? 0), learningRate: learningRate)
        history.append(record)
        epochsDone = epoch
        let improved = best.map { Self.score(record) < $0 } ?? true
        if improved { best = Self.score(record) }
        let seconds = try timed(epoch) {
            guard let store else { return }
            let state = state()
            try store.saveLatest(parameters: model.parameters, state: state)
            if improved { try store.saveBest(parameters: model.parameters, state: state) }
            try store.appendLog(record, learningRate: learningRate)
        }
        return .completed(EpochEnd(record: record, improved: improved, validation: validation, saveSeconds: seconds))
    }

    /// Runs `body` as epoch `epoch`'s checkpoint span of the timeline (when it saves anything)
    /// and returns its seconds.
    @discardableResult
    private func timed(_ epoch: Int, _ body: () throws -> Void) throws -> Double {
        let start = monotonicSeconds()
        try body()
        let end = monotonicSeconds()
        if store != nil { trainer.timeline?.record(.checkpoint, epoch: epoch, from: start, to: end) }
        return end - start
    }
}
