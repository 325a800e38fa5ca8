/// What a training run records: the history of its epochs and the state a resumed run needs.
/// `Checkpoint` stores both in its HDF5 file; `TrainingRun` makes them.

/// One line of the training history.
public struct EpochRecord: Codable, Equatable, Sendable {
    /// 1-based epoch number.
    public var epoch: Int
    /// Mean training loss and Dice coefficient over the epoch.
    public var loss: Double
    public var dice: Double
    /// Validation loss, Dice and Kaggle score (nil when there is no validation set).
    public var valLoss: Double?
    public var valDice: Double?
    public var valKaggle: Double?
    /// Training throughput and wall time of the epoch.
    public var imagesPerSecond: Double
    public var seconds: Double
    /// Adam's learning rate in the epoch (nil in checkpoints written before it was recorded:
    /// the state's `learningRate` then).
    public var learningRate: Float?

    public init(epoch: Int, loss: Double, dice: Double, valLoss: Double? = nil, valDice: Double? = nil,
                valKaggle: Double? = nil, imagesPerSecond: Double, seconds: Double, learningRate: Float? = nil) {
        self.epoch = epoch
        self.loss = loss
        self.dice = dice
        self.valLoss = valLoss
        self.valDice = valDice
        self.valKaggle = valKaggle
        self.imagesPerSecond = imagesPerSecond
        self.seconds = seconds
        self.learningRate = learningRate
    }
}

/// Everything besides the weights that a resumed run needs to continue exactly.
public struct TrainingState: Equatable, Sendable {
    /// Epochs completed.
    public var epoch: Int
    /// Adam's step counter (Keras' `iterations`).
    public var adamStep: Int
    /// Adam's first and second moments, one per parameter, in parameter-table order.
    public var adamM: [Float]
    public var adamV: [Float]
    public var learningRate: Float
    /// Image normalisation: `(pixel - mean) / std` (stored as `mean` and `std`).
    public var mean: Float
    public var std: Float
    /// The run's seed (initialisation and shuffles).
    public var seed: UInt64
    /// Best validation loss so far (training loss when there is no validation set); nil before
    /// the first epoch.
    public var bestScore: Double?
    public var history: [EpochRecord]
    /// Set when the run stopped in the middle of epoch `epoch + 1` (a SIGTERM): the global
    /// batches of that epoch already trained, and the epoch's running loss sum (weighted by
    /// batch size), images and training seconds so far. Zero at an epoch boundary.
    public var epochStep: Int = 0
    public var epochLossSum: Double = 0
    public var epochImages: Int = 0
    public var epochSeconds: Double = 0

    public init(epoch: Int, adamStep: Int, adamM: [Float], adamV: [Float], learningRate: Float,
                mean: Float, std: Float, seed: UInt64, bestScore: Double? = nil, history: [EpochRecord] = []) {
        self.epoch = epoch
        self.adamStep = adamStep
        self.adamM = adamM
        self.adamV = adamV
        self.learningRate = learningRate
        self.mean = mean
        self.std = std
        self.seed = seed
        self.bestScore = bestScore
        self.history = history
    }
}
