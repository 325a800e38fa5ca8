import ArgumentParser
import Checkpoint
import DataIO
import Distributed
import Foundation
import Model
import Training
import Kernels

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the U-Net on the prepared arrays, as the Keras tutorial does.",
        discussion: """
            Reads:  DATA/imgs_train.npy, DATA/imgs_mask_train.npy and (if present)
                    DATA/imgs_subject_train.npy, as `unet prepare` writes them.
            Writes: FILE, the best checkpoint so far by validation loss (by training loss without
                    validation), like Keras' ModelCheckpoint(save_best_only=True), and FILE with
                    `.last` before its extension (unet.last.h5) after every epoch. Both are HDF5
                    in Keras' legacy weights layout: `model.load_weights("unet.h5")` loads them.

            Recipe: images resized to ROWS x COLS (area averaging), normalised by the training
            mean and std; masks scaled to [0, 1]; loss -Dice (smooth 1) over the batch; Adam.
            The last subjects in order (about --validation-split of the images) are held out
            whole, so no subject is in both sets. One line per epoch: loss, Dice, validation
            loss, Dice and Kaggle score, images/s, seconds.

            Example:
              unet train --data data --checkpoint unet.h5 --epochs 20 --batch-size 32
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "Where to save the best checkpoint (the latest goes beside it as *.last.h5).") var checkpoint: String
    @OptionGroup var options: TrainingOptions

    func run() throws {
        Job.run(collectiveTimeout: options.collectiveTimeout) { try train($0) }
    }

    /// Rank 0 reads the data (and the checkpoint when resuming), preprocesses, and broadcasts the
    /// arrays and the starting state; every rank then runs the same loop; rank 0 alone logs and
    /// writes checkpoints.
    func train(_ comm: any Communicator) throws {
        comm.annotate(CollectiveContext("setup"))
        let config = options.modelConfiguration
        let root = comm.isRoot
        guard options.batchSize >= comm.size else {
            throw ValidationError("--batch-size \(options.batchSize) is smaller than the job's \(comm.size) ranks: every rank needs at least one image per step")
        }
        let lastPath = lastCheckpointPath(checkpoint)
        var trainSet = Samples(rows: options.rows, cols: options.cols, images: [])
        var validationSet = trainSet
        var resumed: Checkpoint? = nil
        var seed = options.seed
        var normalisation: (mean: Float, std: Float) = (0, 1)  // rank 0's; only it writes checkpoints
        if root {
            // Every input is there before anything is read (or written).
            try DataFolder(path: data).require(DataFolder.trainingFiles)
            if options.resume {
                if fileExists(lastPath) {
                    let last = try Checkpoint.read(from: lastPath, expecting: config)
                    guard let state = last.state else { throw DataError(lastPath, "has no training state to resume from") }
                    if state.seed != seed {
                        Terminal.writeError("train: resuming with the checkpoint's seed \(state.seed) (not --seed \(seed)), so the shuffles continue as they began\n")
                        seed = state.seed
                    }
                    resumed = last
                } else {
                    Terminal.writeError("train: --resume: no \(lastPath) yet, starting from scratch\n")
                }
            }
            var (all, subjects) = try DataFolder(path: data).loadTraining(rows: options.rows, cols: options.cols)
            let (trainIndices, validationIndices) = Preprocessing.splitBySubject(subjects, fraction: options.validationSplit)
            let (mean, std) = resumed?.state.map { ($0.mean, $0.std) } ?? Preprocessing.meanAndStd(all.subset(trainIndices).images)
            Preprocessing.normalize(&all.images, mean: mean, std: std)
            normalisation = (mean, std)
            trainSet = all.subset(trainIndices)
            validationSet = all.subset(validationIndices)
            let heldSubjects = Set(validationIndices.map { subjects[$0] }).count
            subjects = []
            guard trainSet.count >= comm.size else {
                throw DataError(data, "\(trainSet.count) training images cannot be shared by \(comm.size) ranks")
            }
            Terminal.writeError("train: \(trainSet.count) training images, \(validationSet.count) validation images (\(heldSubjects) subjects held out); \(config); \(config.parameterCount) parameters; \(comm.size) rank\(comm.size == 1 ? "" : "s")\n")
        }
        // Every rank gets the preprocessed arrays and the starting point from rank 0.
        let position = resumed?.state
        let header = try comm.broadcast((Int64(position?.epoch ?? 0), seed, Int64(position?.epochStep ?? 0),
                                         position?.epochLossSum ?? 0, Int64(position?.epochImages ?? 0),
                                         position?.epochSeconds ?? 0), root: 0)
        let startEpoch = Int(header.0)
        seed = header.1
        // Where the first epoch starts: after the steps a stopped run (SIGTERM) already trained.
        var firstEpochProgress = Training.EpochProgress(step: Int(header.2), weightedLoss: header.3,
                                                        images: Int(header.4), seconds: header.5)
        if startEpoch >= options.epochs && !(startEpoch == 0 && options.epochs == 0) {
            if root { Terminal.writeError("train: \(lastPath) already holds epoch \(startEpoch) of \(options.epochs): nothing to do\n") }
            return
        }
        try trainSet.broadcast(comm)
        try validationSet.broadcast(comm)
        let globalBatch = min(options.batchSize, trainSet.count)
        let model = try UNet(configuration: config, seed: seed,
                             maxBatch: Trainer.localBatchSize(globalBatch, ranks: comm.size))
        var adam = Adam(parameterCount: config.parameterCount, learningRate: options.lr)
        if let last = resumed, let state = last.state {
            model.parameters = last.parameters
            (adam.m, adam.v, adam.step) = (state.adamM, state.adamV, state.adamStep)
            if state.learningRate != options.lr {
                Terminal.writeError("train: continuing with --lr \(options.lr) (the checkpoint was trained with \(state.learningRate))\n")
            }
            let within = state.epochStep > 0 ? ", step \(state.epochStep) of epoch \(state.epoch + 1)" : ""
            Terminal.writeError("train: resuming after epoch \(state.epoch)\(within) (Adam step \(state.adamStep)) from \(lastPath)\n")
        }
        let trainer = Trainer(model: model, adam: adam, batchSize: globalBatch, seed: seed, communicator: comm)
        try trainer.broadcastState()

        if options.epochs == 0 {
            // The initial state (epoch 0): to start another framework from our weights, or to
            // resume from later.
            guard root else { return }
            let state = TrainingState(epoch: 0, adamStep: trainer.adam.step, adamM: trainer.adam.m, adamV: trainer.adam.v,
                                      learningRate: options.lr, mean: normalisation.mean, std: normalisation.std, seed: seed,
                                      bestScore: nil, history: [])
            let snapshot = Checkpoint(configuration: config, parameters: model.parameters, state: state)
            try snapshot.write(to: lastPath)
            try snapshot.write(to: checkpoint)
            Terminal.writeError("train: --epochs 0: wrote the initial weights to \(checkpoint) and \(lastPath)\n")
            return
        }
        var history = resumed?.state?.history ?? []
        var best = resumed?.state?.bestScore
        let bar = EpochBar()
        let hooks = TestHooks(rank: comm.rank)
        StopSignal.install()
        trainer.stopRequested = { StopSignal.received != 0 }
        for epoch in (startEpoch + 1)...options.epochs {
            let outcome = try trainer.trainEpoch(trainSet, epoch: epoch, from: firstEpochProgress) { done, total, loss in
                if root { bar.update(epoch: epoch, of: options.epochs, done: done, total: total, loss: loss) }
                hooks.afterStep(trainer.adam.step)
            }
            firstEpochProgress = Training.EpochProgress()
            let metrics: PassMetrics
            switch outcome {
            case .completed(let m):
                metrics = m
            case .stopped(let at):
                // Every rank stops after the same step; rank 0 records where, then all exit.
                let signal = StopSignal.received
                let name = StopSignal.name(signal)
                if root {
                    var state = TrainingState(epoch: epoch - 1, adamStep: trainer.adam.step, adamM: trainer.adam.m,
                                              adamV: trainer.adam.v, learningRate: options.lr, mean: normalisation.mean,
                                              std: normalisation.std, seed: seed, bestScore: best, history: history)
                    (state.epochStep, state.epochLossSum, state.epochImages, state.epochSeconds) =
                        (at.step, at.weightedLoss, at.images, at.seconds)
                    try Checkpoint(configuration: config, parameters: model.parameters, state: state).write(to: lastPath)
                    bar.clear()
                    Terminal.writeError("train: stopped by \(name) in epoch \(epoch) after step \(at.step) (Adam step \(trainer.adam.step));"
                        + " saved \(lastPath); continue with --resume\n")
                }
                throw StoppedBySignal(signal: signal == 0 ? SIGTERM : signal)
            }
            if hooks.corruptRank == comm.rank {
                // Test hook (Launch/test.sh): one replica drifts, and the check below must catch it.
                model.parameters[0] = model.parameters[0].nextUp
            }
            try trainer.checkReplicas()
            let validation = validationSet.count > 0 ? try trainer.evaluate(validationSet) : nil
            guard root else { continue }
            let record = EpochRecord(epoch: epoch, loss: metrics.loss, dice: metrics.dice,
                                     valLoss: validation?.loss, valDice: validation?.dice, valKaggle: validation?.kaggle,
                                     imagesPerSecond: metrics.imagesPerSecond,
                                     seconds: metrics.seconds + (validation?.seconds ?? 0))
            history.append(record)
            let score = validation?.loss ?? metrics.loss
            let improved = best.map { score < $0 } ?? true
            if improved { best = score }
            let state = TrainingState(epoch: epoch, adamStep: trainer.adam.step, adamM: trainer.adam.m, adamV: trainer.adam.v,
                                      learningRate: options.lr, mean: normalisation.mean, std: normalisation.std, seed: seed,
                                      bestScore: best, history: history)
            let snapshot = Checkpoint(configuration: config, parameters: model.parameters, state: state)
            try snapshot.write(to: lastPath)
            if improved { try snapshot.write(to: checkpoint) }
            bar.clear()
            print(Self.line(record, of: options.epochs, saved: improved))
            fflushStdout()
        }
        if root { Terminal.writeError("train: best checkpoint \(checkpoint), latest \(lastPath)\n") }
    }

    static func line(_ r: EpochRecord, of epochs: Int, saved: Bool) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        var s = "epoch \(r.epoch)/\(epochs)  loss \(f(r.loss))  dice \(f(r.dice))"
        if r.valLoss != nil { s += "  val_loss \(f(r.valLoss))  val_dice \(f(r.valDice))  val_kaggle \(f(r.valKaggle))" }
        s += String(format: "  %.1f img/s  %.1f s", r.imagesPerSecond, r.seconds)
        if saved { s += "  (saved)" }
        return s
    }
}

/// The training recipe and the model's shape: `unet train`'s options, shared with `unet run`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Total epochs of the run (0: only write the initial, untrained weights).") var epochs: Int = 20
    @Option(name: .customLong("batch-size"), help: "Images per step (the global batch: the ranks share it).") var batchSize: Int = 32
    @Option(help: "Adam's learning rate.") var lr: Float = 1e-5
    @Option(name: .customLong("validation-split"), help: "Share of images held out, by whole subjects (0: none).") var validationSplit: Double = 0.2
    @Option(help: "Model input height (a multiple of 2^depth).") var rows: Int = 64
    @Option(help: "Model input width (a multiple of 2^depth).") var cols: Int = 80
    @Option(help: "Filters of the first level (doubled at each level).") var filters: Int = 32
    @Option(help: "Number of poolings.") var depth: Int = 4
    @Option(help: "Decoder upsampling: nearest (the original) or transpose.") var upsample: Upsampling = .nearest
    @Option(help: "Seed of the initialisation and the shuffles.") var seed: UInt64 = 1
    @Option(name: .customLong("collective-timeout"), help: """
        Seconds a collective (allreduce, broadcast) may wait for the other ranks before the job \
        is aborted with a message naming the operation and the step (0: wait forever). While \
        rank 0 reads the data at the start, the others wait at least 600 s.
        """) var collectiveTimeout: Double = 600
    @Flag(help: """
        Continue from the latest state (FILE with .last before the extension) up to --epochs in \
        total; starts afresh when there is none yet, so the same command serves after a crash.
        """) var resume = false

    var modelConfiguration: UNetConfiguration {
        UNetConfiguration(rows: rows, cols: cols, filters: filters, depth: depth, upsample: upsample)
    }

    func validate() throws {
        guard epochs >= 0 else { throw ValidationError("--epochs must be at least 0 (0 writes the initial weights)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard lr > 0 else { throw ValidationError("--lr must be positive") }
        guard collectiveTimeout >= 0 else { throw ValidationError("--collective-timeout must be 0 (off) or a number of seconds") }
        guard (0..<1).contains(validationSplit) else { throw ValidationError("--validation-split must be in [0, 1)") }
        do { try modelConfiguration.validate() } catch { throw ValidationError("\(error)") }
    }

}

/// A live progress bar on a terminal (stderr), nothing otherwise.
final class EpochBar {
    private let live = Terminal.standardErrorIsTerminal
    private var start = monotonicSeconds()
    private var lastDraw = 0.0

    func update(epoch: Int, of epochs: Int, done: Int, total: Int, loss: Double) {
        guard live else { return }
        let now = monotonicSeconds()
        if done <= 0 || now - lastDraw < 0.1 && done < total { return }
        lastDraw = now
        let width = 30
        let filled = width * done / max(total, 1)
        let elapsed = now - start
        let eta = done > 0 ? elapsed * Double(total - done) / Double(done) : 0
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        let figures = String(format: "loss %.4f  %.1f img/s  ETA %.0fs", loss, Double(done) / max(elapsed, 1e-9), eta)
        Terminal.writeError("\repoch \(epoch)/\(epochs) [\(bar)] \(done)/\(total)  \(figures)\u{1B}[K")
    }

    func clear() {
        if live { Terminal.writeError("\r\u{1B}[K") }
        start = monotonicSeconds()
        lastDraw = 0
    }
}

extension Upsampling: ExpressibleByArgument {}
