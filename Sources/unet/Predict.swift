import ArgumentParser
import Checkpoint
import DataIO
import Distributed
import Kernels
import Model
import Submission
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict nerve masks for the test images with a trained checkpoint.",
        usage: """
            unet predict --data <data> --checkpoint <checkpoint> [--out <out>]
              [--batch-size <n>] [--png <DIR>]
            """,
        discussion: """
            Reads:  DATA/imgs_test.npy and DATA/imgs_id_test.npy (from `unet prepare`)
                    and a checkpoint written by `unet train` (its model configuration
                    and the training mean and std that normalise the images).
            Writes: OUT, float32 (M, rows, cols) probabilities in test order (as the
                    tutorial's imgs_mask_test.npy), to a temporary name, renamed.
                    With --png DIR, also DIR/<id>.png per test image (<id> from
                    imgs_id_test.npy): the image at its original size (580x420 for
                    Kaggle, from imgs_test.npy) with the outline of its predicted
                    mask in green: probabilities above 0.5, enlarged bilinearly to
                    the image's size, the mask the submission holds. DIR is created
                    if missing. Under mpirun every rank predicts a share; rank 0
                    writes the files.

            Examples:
              unet predict --data data --checkpoint unet.h5 --out imgs_mask_test.npy
              unet predict --data data --checkpoint unet.h5 --png pictures
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "A checkpoint written by `unet train`.") var checkpoint: String
    @Option(help: "Where to write the probabilities (.npy).") var out: String = "imgs_mask_test.npy"
    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Images per forward pass.", valueName: "n")) var batchSize: Int = 32
    @Option(help: ArgumentHelp("Also write DIR/<id>.png: each test image with its predicted outline.", valueName: "DIR"))
    var png: String?

    func run() throws {
        Job.run { try predict($0, threads: $1) }
    }

    func predict(_ comm: any Communicator, threads: KernelThreads) throws {
        comm.annotate(CollectiveContext("setup"))
        do {  // (a scope: the names below are the prediction's)
            guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
            // Rank 0 reads the checkpoint and the test images; every rank predicts a share.
            var test = Samples(rows: 1, cols: 1, images: [])  // rank 0 fills it
            var originals = NDArray<UInt8>(shape: [0, 0, 0], scalars: []), ids: [Int32] = []  // rank 0, for --png
            if comm.isRoot {
                try DataFolder(path: data).require(DataFolder.testFiles)
                if let png { try OverlayPictures.prepareFolder(png) }
            }
            let (model, mean, std) = try loadModel(checkpoint, maxBatch: batchSize, threads: threads, communicator: comm)
            let c = model.configuration
            if comm.isRoot {
                let loaded = try DataFolder(path: data).loadTest(rows: c.rows, cols: c.cols, originals: png != nil)
                test = loaded.samples
                Preprocessing.normalize(&test.images, mean: mean, std: std)
                if png != nil {
                    (originals, ids) = (loaded.originals, loaded.ids)
                    if let duplicate = Submission.duplicateId(in: ids) {
                        throw DataError(DataFolder(path: data).file("imgs_id_test.npy"),
                                        "image id \(duplicate.id) appears twice (at positions \(duplicate.first) and \(duplicate.second)): the pictures would overwrite each other")
                    }
                }
            }
            let count = Int(try comm.broadcast(Int64(test.count)))
            let probabilities = try Trainer.predict(model: model, images: test.images, count: count,
                                                    batchSize: batchSize, communicator: comm)
            guard comm.isRoot else { return }
            try NPY.save(NDArray(shape: [count, c.rows, c.cols], scalars: probabilities), to: out)
            Terminal.writeError("predict: \(count) masks (\(c.rows)x\(c.cols)) to \(out)\(comm.size > 1 ? " (\(comm.size) ranks)" : "")\n")
            if let png {
                try OverlayPictures.writePredictions(to: png, originals: originals, ids: ids, probabilities: probabilities,
                                                     rows: c.rows, cols: c.cols, threads: threads.count)
            }
        }
    }
}

/// A model with a checkpoint's weights, and the normalisation it was trained with. Rank 0 reads
/// the file; the other ranks receive the configuration and the weights from it (they need not
/// see the file). The mean and std are meaningful on rank 0 only. `preloaded`: rank 0 has
/// already read the checkpoint at `path` (it is not read again).
func loadModel(_ path: String, preloaded: Checkpoint? = nil, maxBatch: Int, threads: KernelThreads,
               communicator comm: any Communicator) throws -> (UNet, mean: Float, std: Float) {
    var configuration = UNetConfiguration()
    var parameters: [Float] = []
    var mean: Float = 0, std: Float = 1
    if comm.isRoot {
        let checkpoint = try preloaded ?? Checkpoint.read(from: path)
        guard let state = checkpoint.state else {
            throw DataError(path, "has weights but no training state (mean and std): not written by unet train")
        }
        (configuration, parameters, mean, std) = (checkpoint.configuration, checkpoint.parameters, state.mean, state.std)
    }
    if comm.size > 1 {
        let c = configuration
        let shape = try comm.broadcast((Int64(c.rows), Int64(c.cols), Int64(c.filters), Int64(c.depth),
                                        Int64(Upsampling.allCases.firstIndex(of: c.upsample)!)))
        configuration = UNetConfiguration(rows: Int(shape.0), cols: Int(shape.1), filters: Int(shape.2),
                                          depth: Int(shape.3), upsample: Upsampling.allCases[Int(shape.4)])
        if !comm.isRoot { parameters = [Float](repeating: 0, count: configuration.parameterCount) }
        try comm.broadcast(&parameters)
    }
    let model = try UNet(configuration: configuration, maxBatch: max(1, maxBatch), threads: threads)
    model.parameters = parameters
    return (model, mean, std)
}
