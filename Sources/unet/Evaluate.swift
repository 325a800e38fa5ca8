import ArgumentParser
import Checkpoint
import DataIO
import Distributed
import Foundation
import Kernels
import Model
import Training

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score a checkpoint on the validation subjects (or on every image).",
        usage: """
            unet evaluate --data <data> --checkpoint <checkpoint>
              [--validation-split <split>] [--all] [--batch-size <n>] [--png <DIR>]
            """,
        discussion: """
            Reads:  DATA/imgs_train.npy, DATA/imgs_mask_train.npy,
                    DATA/imgs_subject_train.npy (from `unet prepare`) and a
                    checkpoint written by `unet train`.
            Prints: loss (-Dice over batches), Dice, and the Kaggle score (mean
                    per-image Dice of the masks thresholded at 0.5, 1 when both
                    are empty), on the validation subjects `unet train` held out
                    for the same --validation-split (or every image with --all).
            Writes: with --png DIR, DIR/<index>.png per evaluated image (<index>:
                    its row in imgs_train.npy, from 0): the image at its original
                    size with the predicted outline in green, the true one in red,
                    yellow where they coincide; then DIR/scores.csv, one row per
                    picture, in data order, with the columns
                      index,subject,file,dice,kaggle,kaggle_full,
                      true_pixels,predicted_pixels
                    dice and kaggle are measured at the model's size (their means
                    are the printed figures), kaggle_full and the pixel counts at
                    the original size (the outlines drawn). DIR is created if
                    missing. Under mpirun, rank 0 writes the files.

            Examples:
              unet evaluate --data data --checkpoint unet.h5
              unet evaluate --data data --checkpoint unet.h5 --all
              unet evaluate --data data --checkpoint unet.h5 --png validation
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "A checkpoint written by `unet train`.") var checkpoint: String
    @Option(name: .customLong("validation-split"), help: ArgumentHelp("As given to `unet train`.", valueName: "split"))
    var validationSplit: Double = 0.2
    @Flag(help: "Score every training image instead of the validation subjects.") var all = false
    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Images per forward pass.", valueName: "n")) var batchSize: Int = 32
    @Option(help: ArgumentHelp("Also write DIR/<index>.png with the predicted and true outlines, and DIR/scores.csv.",
                               valueName: "DIR"))
    var png: String?

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard (0..<1).contains(validationSplit) else { throw ValidationError("--validation-split must be in [0, 1)") }
    }

    func run() throws {
        Job.run { comm, threads in
            guard batchSize >= comm.size else {
                throw ValidationError("--batch-size \(batchSize) is smaller than the job's \(comm.size) ranks")
            }
            if comm.isRoot {
                try DataFolder(path: data).require(DataFolder.trainingFiles)
                if let png { try OverlayPictures.prepareFolder(png) }
            }
            let (model, mean, std) = try loadModel(checkpoint, maxBatch: Trainer.localBatchSize(batchSize, ranks: comm.size),
                                                   threads: threads, communicator: comm)
            let c = model.configuration
            let labelled = try LabelledImages.load(data: data, rows: c.rows, cols: c.cols, mean: mean, std: std,
                                                   validationSplit: validationSplit, all: all, originals: png != nil,
                                                   communicator: comm)
            let trainer = Trainer(model: model, adam: Adam(parameterCount: 0), batchSize: batchSize, seed: 0, communicator: comm)
            let m = try trainer.evaluate(labelled.set)
            if comm.isRoot {
                print(String(format: "images %d  loss %.4f  dice %.4f  kaggle %.4f", m.images, m.loss, m.dice, m.kaggle))
                fflushStdout()
            }
            if let png {
                // Every rank predicts a share (as evaluate did); rank 0 draws and scores.
                let probabilities = try Trainer.predict(model: model, images: labelled.set.images, count: labelled.set.count,
                                                        batchSize: batchSize, communicator: comm)
                if comm.isRoot {
                    try OverlayPictures.writeEvaluation(to: png, ScoredImages(labelled, probabilities: probabilities),
                                                        threads: threads.count)
                }
            }
        }
    }
}
