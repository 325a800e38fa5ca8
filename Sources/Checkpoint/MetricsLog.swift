import DataIO
import Training

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The metrics log beside a checkpoint (`unet.csv` for `unet.h5`), as Keras' `CSVLogger`
/// writes it: a header, then one row per epoch, appended across resumes, which
/// `pandas.read_csv` reads as it is:
///
///     epoch,loss,dice,val_loss,val_dice,val_kaggle_score,lr,images_per_s,seconds
///     1,-0.0150,0.0150,-0.0107,0.0107,0.0127,1e-05,9.6,17.3
///
/// `epoch` counts from 1, as the progress lines and the checkpoint do (Keras' logger counts
/// from 0). Numbers are written in full (the shortest text that reads back to the same
/// double); without a validation set the three `val_` cells are empty (NaN for pandas).
/// `images_per_s` is the epoch's training throughput, `seconds` its training and validation
/// time (over every run when the epoch was interrupted and resumed).
///
/// The checkpoint is the authority: a run that starts writes the log anew from the history of
/// the checkpoint it continues (`start(with:)`: nothing for a fresh run), atomically, and then
/// appends a row after each epoch's checkpoint, flushed to disk. So the log never holds an
/// epoch the checkpoint does not (a run that died after a row but before its checkpoint, a
/// partial last line, an older run's rows), nor lacks one it does.
public struct MetricsLog: Sendable {
    public let path: String

    public static let columns = ["epoch", "loss", "dice", "val_loss", "val_dice", "val_kaggle_score",
                                 "lr", "images_per_s", "seconds"]
    public static var header: String { columns.joined(separator: ",") }

    public init(path: String) { self.path = path }

    /// The log beside `checkpoint`: its extension replaced by `.csv` (`out/unet.h5` ->
    /// `out/unet.csv`; `.csv` appended when it has none).
    public init(besideCheckpoint checkpoint: String) {
        let slash = checkpoint.lastIndex(of: "/").map { checkpoint.index(after: $0) } ?? checkpoint.startIndex
        if let dot = checkpoint[slash...].lastIndex(of: "."), dot > slash {
            path = String(checkpoint[..<dot]) + ".csv"
        } else {
            path = checkpoint + ".csv"
        }
    }

    /// One row (without the newline). `learningRate` stands in for a record that has none.
    public static func row(_ r: EpochRecord, learningRate: Float) -> String {
        func number(_ x: Double?) -> String { x.map { "\($0)" } ?? "" }
        return [String(r.epoch), number(r.loss), number(r.dice), number(r.valLoss), number(r.valDice),
                number(r.valKaggle), "\(r.learningRate ?? learningRate)", number(r.imagesPerSecond),
                number(r.seconds)].joined(separator: ",")
    }

    /// Writes the header and `records` (the history of the checkpoint the run continues from;
    /// none for a fresh run), replacing whatever the file held: atomically, so a reader (or a
    /// crash) sees the old log or the new one, never a mix.
    public func start(with records: [EpochRecord], learningRate: Float) throws {
        var text = Self.header + "\n"
        for r in records { text += Self.row(r, learningRate: learningRate) + "\n" }
        try writeAtomically(path, contents: text)
    }

    /// Appends one row and flushes it to disk (fsync). A missing file is created with the
    /// header first.
    public func append(_ record: EpochRecord, learningRate: Float) throws {
        var fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        var text = Self.row(record, learningRate: learningRate) + "\n"
        if fd < 0 && errno == ENOENT {
            fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o666)
            text = Self.header + "\n" + text
        }
        guard fd >= 0 else { throw DataError(path, "cannot open the metrics log: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        try Array(text.utf8).withUnsafeBytes { try writeAll(fd, $0, path: path) }
        guard fsync(fd) == 0 else { throw DataError(path, "cannot flush the metrics log to disk: \(String(cString: strerror(errno)))") }
    }
}
