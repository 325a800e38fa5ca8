import ArgumentParser
import Checkpoint
import DataIO
import Distributed
import Foundation
import Model
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a checkpoint on the validation subjects (or all training data).",
        discussion: """
            Reads:  DATA/imgs_train.npy, DATA/imgs_mask_train.npy, DATA/imgs_subject_train.npy
                    and a checkpoint written by `unet train`.
            Prints: loss (-Dice over batches), Dice, and the Kaggle score (mean per-image Dice of
                    the masks thresholded at 0.5, 1 when both are empty). The validation subjects
                    are chosen as `unet train` chose them for the same --validation-split.

            Example:
              unet evaluate --data data --checkpoint unet.h5
              unet evaluate --data data --checkpoint unet.h5 --all
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "A checkpoint written by `unet train`.") var checkpoint: String
    @Option(name: .customLong("validation-split"), help: "As given to `unet train`.") var validationSplit: Double = 0.2
    @Flag(help: "Score every training image instead of the validation subjects.") var all = false
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.") var batchSize: Int = 32

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard (0..<1).contains(validationSplit) else { throw ValidationError("--validation-split must be in [0, 1)") }
    }

    func run() throws {
        Job.run { comm in
            guard batchSize >= comm.size else {
                throw ValidationError("--batch-size \(batchSize) is smaller than the job's \(comm.size) ranks")
            }
            if comm.isRoot { try DataFolder(path: data).require(DataFolder.trainingFiles) }
            let (model, mean, std) = try loadModel(checkpoint, maxBatch: Trainer.localBatchSize(batchSize, ranks: comm.size),
                                                   communicator: comm)
            let c = model.configuration
            var set = Samples(rows: c.rows, cols: c.cols, images: [], masks: [])
            if comm.isRoot {
                var (samples, subjects) = try DataFolder(path: data).loadTraining(rows: c.rows, cols: c.cols)
                Preprocessing.normalize(&samples.images, mean: mean, std: std)
                let indices = all ? Array(subjects.indices)
                                  : Preprocessing.splitBySubject(subjects, fraction: validationSplit).validation
                guard !indices.isEmpty else {
                    throw DataError(data, "no validation subjects for --validation-split \(validationSplit) (use --all)")
                }
                set = samples.subset(indices)
            }
            try set.broadcast(comm)
            let trainer = Trainer(model: model, adam: Adam(parameterCount: 0), batchSize: batchSize, seed: 0, communicator: comm)
            let m = try trainer.evaluate(set)
            if comm.isRoot {
                print(String(format: "images %d  loss %.4f  dice %.4f  kaggle %.4f", m.images, m.loss, m.dice, m.kaggle))
            }
        }
    }
}
