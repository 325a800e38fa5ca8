import ArgumentParser
import DataIO
import Training
import Foundation
import Kernels

struct Prepare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the Kaggle TIFFs and write the NumPy arrays training uses.",
        discussion: """
            Reads:  RAW/train/<subject>_<n>.tif with RAW/train/<subject>_<n>_mask.tif,
                    and RAW/test/<id>.tif (8- or 16-bit grayscale or RGB TIFFs, any
                    compression libtiff decodes; or PNGs of any kind, .png for .tif;
                    all images of a split of one size).
            Writes: OUT/imgs_train.npy (N,H,W) uint8, OUT/imgs_mask_train.npy
                    (N,H,W) uint8, OUT/imgs_subject_train.npy (N,) int32,
                    OUT/imgs_test.npy (M,H,W) uint8, OUT/imgs_id_test.npy (M,) int32;
                    training ordered by subject then number, test by id. Loadable
                    with numpy.load.

            Masks: two values, 0 for the background and one for the nerve, as
            other tools write them (0/255 as Kaggle's, 0/1, a label index, an RGB
            colour), written as 0/255 with a note; with --label N, masks of several
            labels keep label N. A mask with a third value is refused.

            Files that are not .tif or .png (.DS_Store, notes) are skipped with a
            note. Any other problem (a name that does not parse, an image without
            its mask, a damaged image, sizes that differ) stops with one line naming
            the file, and no .npy file is written.

            Example:
              unet prepare --raw raw --out data
            """
    )

    @Option(help: "The data folder holding train/ and test/.")
    var raw: String

    @Option(help: "Where to write the .npy files (created if missing).")
    var out: String

    @Option(help: "Threads decoding TIFFs (default: every core).")
    var threads: Int?

    @Option(help: ArgumentHelp("For masks of several labels: the label (0-255) that is the nerve; its pixels become 255, all others 0.",
                               valueName: "N"))
    var label: Int?

    func validate() throws {
        if let label, !(0...255).contains(label) { throw ValidationError("--label must be a mask value from 0 to 255") }
    }

    func run() throws {
        var preparer = DatasetPreparer(raw: raw, out: out)
        if let threads { preparer.threads = max(1, threads) }
        preparer.label = label.map { UInt8($0) }
        let line = ProgressLine("prepare: decoded")
        let start = monotonicSeconds()
        let report: DatasetPreparer.Report
        do {
            report = try preparer.run { line.update($0, $1) }
        } catch {
            Terminal.fail(error)
        }
        for note in report.notes { Terminal.writeError("note: \(note)\n") }
        let seconds = monotonicSeconds() - start
        line.finish("\(report.trainCount) training images with masks (\(report.trainSize.height)x\(report.trainSize.width)) and \(report.testCount) test images (\(report.testSize.height)x\(report.testSize.width)) in \(String(format: "%.1f", seconds)) s")
        for path in report.outputs { print(path) }
    }
}
