import ArgumentParser
import Checkpoint
import DataIO
import Foundation
import Model
import Training

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
    @Option(help: "Total epochs of the run.") var epochs: Int = 20
    @Option(name: .customLong("batch-size"), help: "Images per step.") var batchSize: Int = 32
    @Option(help: "Adam's learning rate.") var lr: Float = 1e-5
    @Option(name: .customLong("validation-split"), help: "Share of images held out, by whole subjects (0: none).") var validationSplit: Double = 0.2
    @Option(help: "Model input height (a multiple of 2^depth).") var rows: Int = 64
    @Option(help: "Model input width (a multiple of 2^depth).") var cols: Int = 80
    @Option(help: "Filters of the first level (doubled at each level).") var filters: Int = 32
    @Option(help: "Number of poolings.") var depth: Int = 4
    @Option(help: "Decoder upsampling: nearest (the original) or transpose.") var upsample: Upsampling = .nearest
    @Option(help: "Seed of the initialisation and the shuffles.") var seed: UInt64 = 1

    var modelConfiguration: UNetConfiguration {
        UNetConfiguration(rows: rows, cols: cols, filters: filters, depth: depth, upsample: upsample)
    }

    func validate() throws {
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard lr > 0 else { throw ValidationError("--lr must be positive") }
        guard (0..<1).contains(validationSplit) else { throw ValidationError("--validation-split must be in [0, 1)") }
        do { try modelConfiguration.validate() } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        do { try train() } catch { Terminal.fail(error) }
    }

    func train() throws {
        let config = modelConfiguration
        let folder = DataFolder(path: data)
        var (all, subjects) = try folder.loadTraining(rows: rows, cols: cols)
        let (trainIndices, validationIndices) = Preprocessing.splitBySubject(subjects, fraction: validationSplit)
        let (mean, std) = Preprocessing.meanAndStd(all.subset(trainIndices).images)
        Preprocessing.normalize(&all.images, mean: mean, std: std)
        let trainSet = all.subset(trainIndices)
        let validationSet = all.subset(validationIndices)
        let heldSubjects = Set(validationIndices.map { subjects[$0] }).count
        subjects = []
        Terminal.writeError("train: \(trainSet.count) training images, \(validationSet.count) validation images (\(heldSubjects) subjects held out); \(config); \(config.parameterCount) parameters\n")

        let model = try UNet(configuration: config, seed: seed, maxBatch: min(batchSize, max(trainSet.count, 1)))
        let trainer = Trainer(model: model, adam: Adam(parameterCount: config.parameterCount, learningRate: lr),
                              batchSize: min(batchSize, trainSet.count), seed: seed)
        var history: [EpochRecord] = []
        var best: Double? = nil
        let bar = EpochProgress()
        for epoch in 1...epochs {
            let metrics = trainer.trainEpoch(trainSet, epoch: epoch) { done, total, loss in
                bar.update(epoch: epoch, of: epochs, done: done, total: total, loss: loss)
            }
            let validation = validationSet.count > 0 ? trainer.evaluate(validationSet) : nil
            let record = EpochRecord(epoch: epoch, loss: metrics.loss, dice: metrics.dice,
                                     valLoss: validation?.loss, valDice: validation?.dice, valKaggle: validation?.kaggle,
                                     imagesPerSecond: metrics.imagesPerSecond,
                                     seconds: metrics.seconds + (validation?.seconds ?? 0))
            history.append(record)
            guard record.loss.isFinite else {
                throw DataError(checkpoint, "training diverged at epoch \(epoch): the loss is \(record.loss); no checkpoint written for it")
            }
            let score = validation?.loss ?? metrics.loss
            let improved = best.map { score < $0 } ?? true
            if improved { best = score }
            let state = TrainingState(epoch: epoch, adamStep: trainer.adam.step, adamM: trainer.adam.m, adamV: trainer.adam.v,
                                      learningRate: lr, mean: mean, std: std, seed: seed, bestScore: best, history: history)
            let snapshot = Checkpoint(configuration: config, parameters: model.parameters, state: state)
            try snapshot.write(to: lastCheckpointPath(checkpoint))
            if improved { try snapshot.write(to: checkpoint) }
            bar.clear()
            print(Self.line(record, of: epochs, saved: improved))
            fflushStdout()
        }
        Terminal.writeError("train: best checkpoint \(checkpoint), latest \(lastCheckpointPath(checkpoint))\n")
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

/// A live progress bar on a terminal (stderr), nothing otherwise.
final class EpochProgress {
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
