import ArgumentParser
import Checkpoint
import DataIO
import Distributed
import Pictures
import Synchronization
import Training
import Kernels

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one self-contained HTML page that shows how a training went.",
        usage: """
            unet report --checkpoint <checkpoint> --out <out> [--data <data>]
              [--validation-split <split>] [--all] [--max-images <n>]
              [--batch-size <n>]
            """,
        discussion: """
            Reads:  CHECKPOINT, written by `unet train` (its model, epoch, Adam
                    step, learning rate, mean and std, seed, best score), and the
                    metrics log beside it (unet.csv for unet.h5 or unet.last.h5),
                    or the checkpoint's own history without one. With --data DIR,
                    DIR/imgs_train.npy, imgs_mask_train.npy and
                    imgs_subject_train.npy (from `unet prepare`): the validation
                    subjects held out by the same --validation-split (or --all).
            Writes: OUT, one HTML page with nothing outside it (the pictures are
                    embedded PNG, the curves inline SVG), to a temporary name,
                    renamed: the loss and Dice curves per epoch (training and
                    validation), the configuration, the images/s per epoch and
                    the time; with --data, the --max-images validation images
                    with the lowest Dice, each with its predicted outline
                    (green), its true one (red, yellow where both) and its
                    scores, as `unet evaluate --png` draws them, made smaller.
                    Without --data the page says how to add them.

            A missing or damaged checkpoint or metrics log is one line naming
            the file, and OUT is not written. Under mpirun every rank predicts
            a share; rank 0 reads and writes.

            Examples:
              unet report --checkpoint out/unet.h5 --out report.html
              unet report --checkpoint out/unet.h5 --data out/data \\
                  --out report.html --max-images 12
            """
    )

    @Option(help: "A checkpoint written by `unet train` (the metrics log is read from beside it).")
    var checkpoint: String
    @Option(help: "Where to write the page (.html).") var out: String
    @Option(help: ArgumentHelp("The folder `unet prepare` wrote: adds the validation images, worst first.",
                               valueName: "data"))
    var data: String?
    @Option(name: .customLong("validation-split"), help: ArgumentHelp("As given to `unet train`.", valueName: "split"))
    var validationSplit: Double = 0.2
    @Flag(help: "Score every training image instead of the validation subjects.") var all = false
    @Option(name: .customLong("max-images"), help: ArgumentHelp("Pictures on the page: the images with the lowest Dice.",
                                                                valueName: "n"))
    var maxImages: Int = 24
    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Images per forward pass.", valueName: "n"))
    var batchSize: Int = 32

    /// The size the pictures are shown at, at most (580x420 images become 290x210).
    static let pictureSize = (width: 290, height: 210)

    func validate() throws {
        guard !out.isEmpty else { throw ValidationError("--out needs a file name") }
        guard maxImages >= 1 else { throw ValidationError("--max-images must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard (0..<1).contains(validationSplit) else { throw ValidationError("--validation-split must be in [0, 1)") }
        guard data != nil || !all else { throw ValidationError("--all needs --data") }
    }

    func run() throws {
        Job.run { comm, threads in
            guard batchSize >= comm.size else {
                throw ValidationError("--batch-size \(batchSize) is smaller than the job's \(comm.size) ranks")
            }
            // Rank 0 checks and reads every input before any work, and writes nothing until
            // the page is whole.
            var page: ReportPage? = nil
            var read: Checkpoint? = nil
            if comm.isRoot {
                try Self.checkOutput(out)
                if let data { try DataFolder(path: data).require(DataFolder.trainingFiles) }
                let checkpoint = try Checkpoint.read(from: self.checkpoint)
                if data != nil && checkpoint.state == nil {
                    throw DataError(self.checkpoint, "has weights but no training state (mean and std): not written by unet train")
                }
                page = try makePage(checkpoint)
                read = checkpoint
            }
            if let data {
                // Every rank predicts (not `page?.grid = try grid(...)`: on the other ranks
                // `page` is nil, and optional chaining would skip the call, and the collectives).
                let pictures = try grid(data: data, checkpoint: read, threads: threads, communicator: comm)
                page?.grid = pictures
            }
            guard comm.isRoot, let page else { return }
            let html = page.html()
            try writeAtomically(out, contents: html)
            let pictures = page.grid.map { ", \($0.pictures.count) of \($0.scored) validation images" } ?? ""
            Terminal.writeError("report: \(out) (\(page.records.count) epochs\(pictures); \(html.utf8.count / 1024) kB)\n")
        }
    }

    /// The page without the pictures: the checkpoint, and the epochs from the metrics log beside
    /// it, else from the checkpoint's history.
    func makePage(_ checkpoint: Checkpoint) throws -> ReportPage {
        var info = stat()
        let size = stat(self.checkpoint, &info) == 0 ? Int(info.st_size) : 0
        let log = MetricsLog(besideCheckpoint: Self.bestCheckpointPath(self.checkpoint))
        let history = checkpoint.state?.history ?? []
        var records: [EpochRecord], source: String, notes: [String] = []
        if fileExists(log.path) {
            let contents = try log.read()
            (records, source) = (contents.records, "the metrics log \(log.path)")
            if contents.droppedPartialRow {
                notes.append("The last row of \(log.path) is cut short (a run stopped while writing it) and is left out.")
            }
            // The log and the checkpoint should tell the same story for the epochs both hold.
            let logged = Dictionary(records.map { ($0.epoch, $0) }, uniquingKeysWith: { a, _ in a })
            if let differing = history.first(where: { h in logged[h.epoch].map { $0.loss != h.loss } ?? false }) {
                notes.append("\(log.path) differs from the checkpoint's history at epoch \(differing.epoch)"
                    + " (loss \(logged[differing.epoch]!.loss) vs \(differing.loss)): it may be another run's.")
            } else if let missing = history.first(where: { logged[$0.epoch] == nil }) {
                notes.append("\(log.path) lacks epoch \(missing.epoch) of the checkpoint's history.")
            }
        } else {
            (records, source) = (history, "the checkpoint's history (no metrics log \(log.path))")
        }
        for note in notes { Terminal.writeError("report: note: \(note)\n") }
        let data = self.data ?? "DIR"
        return ReportPage(checkpointPath: self.checkpoint, checkpointBytes: size, checkpoint: checkpoint, records: records,
                          metricsSource: source, notes: notes, grid: nil,
                          gridCommand: "unet report --checkpoint \(self.checkpoint) --data \(data) --out \(out)")
    }

    /// With --data: every rank predicts a share of the validation images; rank 0 scores them
    /// all and draws the worst `maxImages` at `pictureSize`.
    func grid(data: String, checkpoint: Checkpoint?, threads: KernelThreads,
              communicator comm: any Communicator) throws -> ReportGrid? {
        let (model, mean, std) = try loadModel(self.checkpoint, preloaded: checkpoint,
                                               maxBatch: Trainer.localBatchSize(batchSize, ranks: comm.size), threads: threads,
                                               communicator: comm)
        let c = model.configuration
        let labelled = try LabelledImages.load(data: data, rows: c.rows, cols: c.cols, mean: mean, std: std,
                                               validationSplit: validationSplit, all: all, originals: true, communicator: comm)
        let probabilities = try Trainer.predict(model: model, images: labelled.set.images, count: labelled.set.count,
                                                batchSize: batchSize, communicator: comm)
        guard comm.isRoot else { return nil }
        let scored = ScoredImages(labelled, probabilities: probabilities)
        // Every image's scores (in parallel), then the worst ones' pictures.
        let scores = Mutex<[OverlayPictures.Score?]>(Array(repeating: nil, count: scored.count))
        try Pictures.forEach(scored.count, threads: threads.count) { i in
            let score = scored.evaluate(i).score
            scores.withLock { $0[i] = score }
        }
        let all = scores.withLock { $0.map { $0! } }
        let worst = Array(Self.worstFirst(all).prefix(maxImages))
        let pictures = Mutex<[ReportGrid.Picture?]>(Array(repeating: nil, count: worst.count))
        let position = Dictionary(uniqueKeysWithValues: scored.indices.enumerated().map { ($1, $0) })
        try Pictures.forEach(worst.count, threads: threads.count) { k in
            let image = scored.evaluate(position[worst[k].index]!)
            let picture = scored.reducedPicture(image, maxWidth: Self.pictureSize.width, maxHeight: Self.pictureSize.height)
            let png = try PNG.encode(picture, name: "\(out): picture of image \(image.score.index)")
            pictures.withLock { $0[k] = .init(score: image.score, png: png, width: picture.width, height: picture.height) }
        }
        let shown = pictures.withLock { $0.map { $0! } }
        func average(_ value: (OverlayPictures.Score) -> Double) -> Double { all.map(value).reduce(0, +) / Double(all.count) }
        return ReportGrid(pictures: shown, scored: all.count,
                          selection: self.all ? "every training image (--all)"
                                              : "the validation subjects (--validation-split \(validationSplit))",
                          width: scored.width, height: scored.height,
                          pictureWidth: shown.first?.width ?? 0, pictureHeight: shown.first?.height ?? 0,
                          meanKaggle: average(\.kaggle), meanKaggleFull: average(\.kaggleFull), meanDice: average(\.dice))
    }

    /// Lowest Dice of the outlines first (`kaggleFull`), then lowest soft Dice, then data order.
    static func worstFirst(_ scores: [OverlayPictures.Score]) -> [OverlayPictures.Score] {
        scores.sorted { ($0.kaggleFull, $0.dice, $0.index) < ($1.kaggleFull, $1.dice, $1.index) }
    }

    /// `unet.last.h5` -> `unet.h5` (the name the metrics log goes beside); other names as they are.
    static func bestCheckpointPath(_ path: String) -> String {
        let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
        let name = path[slash...]
        if let dot = name.lastIndex(of: "."), name[..<dot].hasSuffix(".last"), name[..<dot].count > ".last".count {
            return String(path[..<dot].dropLast(".last".count)) + String(path[dot...])
        }
        if name.hasSuffix(".last") && name.count > ".last".count { return String(path.dropLast(".last".count)) }
        return path
    }

    /// The page can be written: `out` is not a folder and its folder exists and is writable.
    /// Checked first, so a bad --out is one line before any work.
    static func checkOutput(_ out: String) throws {
        var info = stat()
        if stat(out, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            throw DataError(out, "is a folder: --out names the HTML file to write")
        }
        let folder = out.lastIndex(of: "/").map { String(out[..<$0]) }.map { $0.isEmpty ? "/" : $0 } ?? "."
        guard stat(folder, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DataError(out, "cannot write: no folder \(folder)")
        }
        guard access(folder, W_OK) == 0 else {
            throw DataError(out, "cannot write into \(folder): \(String(cString: strerror(errno)))")
        }
    }
}
