import ArgumentParser
import DataIO
import Distributed
import Submission

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the Kaggle submission.csv from predicted test masks.",
        usage: """
            unet submit --data <data> --masks <masks> --out <out>
              [--threshold <threshold>] [--min-pixels <min-pixels>]
            """,
        discussion: """
            Reads:  DATA/imgs_id_test.npy (the test ids, from `unet prepare`),
                    only the header of DATA/imgs_test.npy (the original image
                    size), and MASKS, the float32 (M, rows, cols) probabilities
                    `unet predict` wrote ((M, 1, rows, cols) and
                    (M, rows, cols, 1), as Keras writes them, work too).
            Writes: OUT, the CSV Kaggle takes: the header `img,pixels`, then
                    per test image, sorted by id, `id,<start length ...>`: the
                    mask thresholded at --threshold, enlarged bilinearly to
                    the original size (a pixel is set above 0.5), run-length
                    encoded column-major from 1; empty when fewer than
                    --min-pixels pixels are set. Written to a temporary name
                    and renamed.

            Counts that differ between the three files, a bad shape or dtype,
            or a repeated id stop with one line naming the file, and OUT is
            not written. Under mpirun only rank 0 works.

            Example:
              unet submit --data data --masks imgs_mask_test.npy --out submission.csv
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "The probabilities `unet predict` wrote (.npy).") var masks: String
    @Option(help: "Where to write the submission (.csv).") var out: String
    @Option(help: "A mask pixel is set where the probability is above this (between 0 and 1).") var threshold: Float = 0.5
    @Option(name: .customLong("min-pixels"), help: "Masks with fewer pixels set are submitted empty.") var minPixels: Int = 10

    func run() throws {
        guard MPICommunicator.world.rank == 0 else { return }
        do {
            try submit()
        } catch {
            Terminal.fail(error)
        }
    }

    func submit() throws {
        guard threshold > 0, threshold < 1 else {  // false for NaN too
            throw ValidationError("--threshold must be between 0 and 1 (exclusive), got \(threshold)")
        }
        guard minPixels >= 0 else { throw ValidationError("--min-pixels must be at least 0, got \(minPixels)") }

        let folder = DataFolder(path: data)
        let imageFile = folder.file("imgs_test.npy"), idFile = folder.file("imgs_id_test.npy")
        // The original size from the header alone: the test images themselves are not needed.
        let images = try NPY.readHeader(imageFile).shape
        let imageShape = describe(images)
        let (n, height, width): (Int, Int, Int)
        switch images.count {
        case 3: (n, height, width) = (images[0], images[1], images[2])
        case 4 where images[1] == 1: (n, height, width) = (images[0], images[2], images[3])
        default: throw DataError(imageFile, "expected test images of shape (N, H, W) or (N, 1, H, W), found shape \(imageShape)")
        }
        guard n > 0, height > 0, width > 0 else { throw DataError(imageFile, "shape \(imageShape) holds no test images") }

        let ids = try NPY.load(idFile, as: Int32.self)
        guard ids.shape == [n] else {
            throw DataError(idFile, "shape \(describe(ids.shape)) does not match \(imageFile)'s \(imageShape): expected (\(n),)")
        }
        if let d = Submission.duplicateId(in: ids.scalars) {
            throw DataError(idFile, "id \(d.id) appears twice (at positions \(d.first) and \(d.second))")
        }

        let probabilities = try NPY.load(masks, as: Float.self)
        let s = probabilities.shape
        let (count, rows, cols): (Int, Int, Int)
        switch s.count {
        case 3: (count, rows, cols) = (s[0], s[1], s[2])
        case 4 where s[1] == 1: (count, rows, cols) = (s[0], s[2], s[3])
        case 4 where s[3] == 1: (count, rows, cols) = (s[0], s[1], s[2])
        default:
            throw DataError(masks, "expected masks of shape (N, rows, cols), (N, 1, rows, cols) or (N, rows, cols, 1), found shape \(describe(s))")
        }
        guard count == n else {
            throw DataError(masks, "shape \(describe(s)) holds \(count) masks, but \(imageFile) has shape \(imageShape): \(n) test images")
        }
        guard rows > 0, cols > 0 else { throw DataError(masks, "shape \(describe(s)) has empty masks") }

        let summary = try Submission.write(ids: ids.scalars, masks: probabilities.scalars, rows: rows, cols: cols,
                                           height: height, width: width, threshold: threshold,
                                           minPixels: minPixels, to: out)
        Terminal.writeError("submit: \(summary.images) images (\(height)x\(width)), \(summary.nonEmpty) with a mask"
            + " of at least \(minPixels) pixels, \(summary.images - summary.nonEmpty) empty, to \(out)\n")
    }
}

/// A shape as NumPy prints it: `(3,)`, `(3, 420, 580)`.
private func describe(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}
