import Model
import Training

/// A training run's files, as `unet train` keeps them: the latest state (`unet.last.h5`),
/// the best one (`unet.h5`, as Keras' `ModelCheckpoint(save_best_only=True)`) and the metrics
/// log (`unet.csv`), each checkpoint written whole or not at all (`Checkpoint.write`).
public struct RunFiles: RunStore {
    public let configuration: UNetConfiguration
    public let best: String
    public let latest: String
    public let log: MetricsLog

    public init(configuration: UNetConfiguration, best: String, latest: String, log: MetricsLog) {
        self.configuration = configuration
        self.best = best
        self.latest = latest
        self.log = log
    }

    public func saveLatest(parameters: [Float], state: TrainingState) throws {
        try Checkpoint(configuration: configuration, parameters: parameters, state: state).write(to: latest)
    }

    public func saveBest(parameters: [Float], state: TrainingState) throws {
        try Checkpoint(configuration: configuration, parameters: parameters, state: state).write(to: best)
    }

    public func startLog(with history: [EpochRecord], learningRate: Float) throws {
        try log.start(with: history, learningRate: learningRate)
    }

    public func appendLog(_ record: EpochRecord, learningRate: Float) throws {
        try log.append(record, learningRate: learningRate)
    }
}
