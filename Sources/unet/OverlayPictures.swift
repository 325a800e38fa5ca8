#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DataIO
import Foundation
import Kernels
import Pictures
import Submission
import Synchronization
import Training

/// `--png DIR` of `unet predict` and `unet evaluate`: each image at its original size with the
/// outline of the predicted mask (thresholded at 0.5 and enlarged as for the submission,
/// `SubmissionMask.binarize`) and, for labelled images, the true outline. Rank 0 writes them.
enum OverlayPictures {
    /// The probability above which a model pixel belongs to the predicted mask.
    static let threshold: Float = 0.5

    /// Creates `path` (and its parents) unless it exists, and checks that it is a folder this
    /// process may write into: a bad `--png` is one line naming it, before any work.
    static func prepareFolder(_ path: String) throws {
        try makeDirectory(path)
        var info = stat()
        guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DataError(path, "not a folder: --png names the folder for the pictures")
        }
        guard access(path, W_OK) == 0 else {
            throw DataError(path, "cannot write into the folder: \(String(cString: strerror(errno)))")
        }
    }

    /// `DIR/<id>.png` for every test image: the image with its predicted outline.
    /// `probabilities` is `ids.count x rows x cols` in the order of `originals` (M, H, W).
    static func writePredictions(to folder: String, originals: NDArray<UInt8>, ids: [Int32],
                                 probabilities: [Float], rows: Int, cols: Int, threads: Int) throws {
        let (count, height, width) = (originals.shape[0], originals.shape[1], originals.shape[2])
        precondition(ids.count == count && probabilities.count == count * rows * cols)
        let plane = height * width, modelPlane = rows * cols
        let progress = Progress("predict: pictures", total: count)
        try Pictures.forEach(count, threads: threads) { i in
            let predicted = probabilities.withUnsafeBufferPointer {
                SubmissionMask.binarize(probabilities: UnsafeBufferPointer(rebasing: $0[(i * modelPlane)..<((i + 1) * modelPlane)]),
                                        rows: rows, cols: cols, threshold: threshold, height: height, width: width)
            }
            let picture = Overlay.draw(image: Array(originals.scalars[(i * plane)..<((i + 1) * plane)]),
                                       width: width, height: height, predicted: predicted)
            try PNG.write(picture, to: "\(folder)/\(ids[i]).png")
            progress.tick()
        }
        progress.finish("\(count) to \(folder) (\(width)x\(height), predicted outline green)")
    }

    /// What `scores.csv` says of one labelled image.
    struct Score {
        var index: Int, subject: Int32, file: String
        /// Dice of the probabilities with the resized mask at the model's size (smooth 1), as the
        /// loss measures it.
        var dice: Double
        /// The Kaggle score at the model's size (`KaggleScore`): its mean is `evaluate`'s kaggle.
        var kaggle: Double
        /// The Kaggle score at the original size, of the outlines the picture shows.
        var kaggleFull: Double
        var truePixels: Int, predictedPixels: Int
    }

    static let scoresHeader = "index,subject,file,dice,kaggle,kaggle_full,true_pixels,predicted_pixels"

    /// `DIR/<index>.png` for every image of `scored`, with the predicted and true outlines, then
    /// `DIR/scores.csv`: one row per picture in data order (`scoresHeader`).
    static func writeEvaluation(to folder: String, _ scored: ScoredImages, threads: Int) throws {
        let scores = Mutex<[Int: Score]>([:])
        let progress = Progress("evaluate: pictures", total: scored.count)
        try Pictures.forEach(scored.count, threads: threads) { i in
            let image = scored.evaluate(i)
            try PNG.write(scored.picture(image), to: "\(folder)/\(image.score.file)")
            scores.withLock { $0[i] = image.score }
            progress.tick()
        }
        var csv = scoresHeader + "\n"
        for i in 0..<scored.count {
            let s = scores.withLock { $0[i]! }
            csv += "\(s.index),\(s.subject),\(s.file)," + String(format: "%.6f,%.6f,%.6f", s.dice, s.kaggle, s.kaggleFull)
                + ",\(s.truePixels),\(s.predictedPixels)\n"
        }
        try writeAtomically(folder + "/scores.csv", contents: csv)
        progress.finish("\(scored.count) and scores.csv to \(folder) (\(scored.width)x\(scored.height), predicted outline green, true red, both yellow)")
    }

    /// A `ProgressLine` fed from several threads.
    final class Progress: Sendable {
        private let line: ProgressLine
        private let done = Atomic<Int>(0)
        private let total: Int
        init(_ label: String, total: Int) { (line, self.total) = (ProgressLine(label), total) }
        func tick() { line.update(done.add(1, ordering: .relaxed).newValue, total) }
        func finish(_ summary: String) { line.finish(summary) }
    }
}

/// Labelled images with the model's probabilities, scored one at a time: what `evaluate --png`
/// writes (a picture and a row of scores.csv per image) and `unet report` shows (the worst
/// ones, smaller). Rank 0's.
struct ScoredImages: Sendable {
    /// The model-size samples of `indices` (rows of the training arrays), in that order.
    let samples: Samples
    let indices: [Int]
    /// The subject of every training image, by row.
    let subjects: [Int32]
    /// The training arrays as read: images and masks (N, H, W) at their original size.
    let images: NDArray<UInt8>, masks: NDArray<UInt8>
    /// `samples.count x rows x cols` probabilities, in the order of `samples`.
    let probabilities: [Float]

    init(_ labelled: LabelledImages, probabilities: [Float]) {
        (samples, indices, subjects) = (labelled.set, labelled.indices, labelled.subjects)
        (images, masks, self.probabilities) = (labelled.images, labelled.masks, probabilities)
        precondition(indices.count == samples.count && probabilities.count == samples.count * samples.rows * samples.cols
                     && masks.shape == images.shape)
    }

    var count: Int { samples.count }
    var height: Int { images.shape[1] }
    var width: Int { images.shape[2] }

    /// One image scored, with its masks at the original size (0 or 1, row-major).
    struct Evaluated {
        var score: OverlayPictures.Score
        /// The predicted mask as the submission holds it (`SubmissionMask.binarize`).
        var predicted: [UInt8]
        /// The true mask (`imgs_mask_train.npy` above 127).
        var truth: [UInt8]
    }

    /// The `i`-th image of `samples`: its masks and its scores.
    func evaluate(_ i: Int) -> Evaluated {
        let (rows, cols) = (samples.rows, samples.cols)
        let plane = height * width, modelPlane = rows * cols
        let threshold = OverlayPictures.threshold
        let index = indices[i]
        let model = (i * modelPlane)..<((i + 1) * modelPlane)
        let (predicted, dice, kaggle) = probabilities.withUnsafeBufferPointer { p in
            samples.masks.withUnsafeBufferPointer { t in
                let p = UnsafeBufferPointer(rebasing: p[model]), t = UnsafeBufferPointer(rebasing: t[model])
                return (SubmissionMask.binarize(probabilities: p, rows: rows, cols: cols, threshold: threshold,
                                                height: height, width: width),
                        DiceLoss.sums(predictions: p, targets: t).dice,
                        KaggleScore.perImage(predictions: p, targets: t, pixels: modelPlane, threshold: threshold)[0])
            }
        }
        let truth = masks.scalars[(index * plane)..<((index + 1) * plane)].map { $0 > 127 ? UInt8(1) : 0 }
        var (a, b, both) = (0, 0, 0)
        for k in 0..<plane {
            a += Int(predicted[k])
            b += Int(truth[k])
            both += Int(predicted[k] & truth[k])
        }
        let score = OverlayPictures.Score(index: index, subject: subjects[index], file: "\(index).png", dice: dice,
                                          kaggle: kaggle, kaggleFull: a + b == 0 ? 1 : 2 * Double(both) / Double(a + b),
                                          truePixels: b, predictedPixels: a)
        return Evaluated(score: score, predicted: predicted, truth: truth)
    }

    /// The gray image as read, of row `index` of the training arrays.
    func originalImage(_ index: Int) -> [UInt8] {
        let plane = height * width
        return Array(images.scalars[(index * plane)..<((index + 1) * plane)])
    }

    /// The image at its original size with the predicted outline in green, the true one in red,
    /// yellow where they coincide.
    func picture(_ e: Evaluated) -> RGBImage {
        Overlay.draw(image: originalImage(e.score.index), width: width, height: height,
                     predicted: e.predicted, truth: e.truth)
    }

    /// The same picture shrunk to fit `maxWidth x maxHeight` (`Overlay.drawReduced`).
    func reducedPicture(_ e: Evaluated, maxWidth: Int, maxHeight: Int) -> RGBImage {
        Overlay.drawReduced(image: originalImage(e.score.index), width: width, height: height,
                            predicted: e.predicted, truth: e.truth, maxWidth: maxWidth, maxHeight: maxHeight)
    }
}
