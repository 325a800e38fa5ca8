import ArgumentParser
import Checkpoint
import DataIO
import Model
import Training

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict nerve masks for the test images with a trained checkpoint.",
        discussion: """
            Reads:  DATA/imgs_test.npy and DATA/imgs_id_test.npy (from `unet prepare`) and a
                    checkpoint written by `unet train` (its model configuration and the training
                    mean and std used to normalise the images).
            Writes: OUT, float32 (M, rows, cols) probabilities in test order (as the tutorial's
                    imgs_mask_test.npy), written to a temporary name and renamed.

            Example:
              unet predict --data data --checkpoint unet.h5 --out imgs_mask_test.npy
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "A checkpoint written by `unet train`.") var checkpoint: String
    @Option(help: "Where to write the probabilities (.npy).") var out: String = "imgs_mask_test.npy"
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.") var batchSize: Int = 32

    func run() throws {
        do {
            let (model, mean, std) = try loadModel(checkpoint, maxBatch: batchSize)
            let c = model.configuration
            var (test, _, _, _) = try DataFolder(path: data).loadTest(rows: c.rows, cols: c.cols)
            Preprocessing.normalize(&test.images, mean: mean, std: std)
            let probabilities = Trainer.predict(model: model, test, batchSize: batchSize)
            try NPY.save(NDArray(shape: [test.count, c.rows, c.cols], scalars: probabilities), to: out)
            Terminal.writeError("predict: \(test.count) masks (\(c.rows)x\(c.cols)) to \(out)\n")
        } catch {
            Terminal.fail(error)
        }
    }
}

/// A model with a checkpoint's weights, and the normalisation it was trained with.
func loadModel(_ path: String, maxBatch: Int) throws -> (UNet, mean: Float, std: Float) {
    let checkpoint = try Checkpoint.read(from: path)
    guard let state = checkpoint.state else {
        throw DataError(path, "has weights but no training state (mean and std): not written by unet train")
    }
    let model = try UNet(configuration: checkpoint.configuration, maxBatch: max(1, maxBatch))
    model.parameters = checkpoint.parameters
    return (model, state.mean, state.std)
}
