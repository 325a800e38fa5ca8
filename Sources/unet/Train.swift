import ArgumentParser
import Checkpoint
import DataIO
import Distributed
import Foundation
import Model
import Training
import Kernels

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the U-Net on the prepared arrays, as the Keras tutorial does.",
        discussion: """
            Reads:  DATA/imgs_train.npy, DATA/imgs_mask_train.npy and (if present)
                    DATA/imgs_subject_train.npy, as `unet prepare` writes them;
                    with --resume, FILE with .last before its extension.
            Writes: FILE, the best checkpoint so far by validation loss (by
                    training loss without validation), as Keras'
                    ModelCheckpoint(save_best_only=True), and FILE with .last
                    before its extension (unet.last.h5) after every epoch: HDF5
                    in Keras' legacy weights layout, so Keras'
                    model.load_weights("unet.h5") loads them.
                    The metrics log, FILE with the extension .csv (unet.csv): a
                    header, then one row per epoch, as Keras' CSVLogger writes:
                      epoch,loss,dice,val_loss,val_dice,val_kaggle_score,lr,
                      images_per_s,seconds      (one line in the file)
                    epoch from 1; val_ cells empty without validation (NaN);
                    pandas.read_csv("unet.csv") reads it as it is. A run
                    rewrites it from the history of the checkpoint it starts
                    from (so no epoch is listed twice), then appends a row
                    after each epoch.
                    With --timeline T.json: a Chrome trace of every rank's steps.

            Recipe: images resized to ROWS x COLS (area averaging), normalised
            by the training mean and std; masks scaled to [0, 1]; loss -Dice
            (smooth 1) over the batch; Adam. The last subjects in order (about
            --validation-split of the images) are held out whole, so no subject
            is in both sets.

            Output (rank 0): on a terminal, a live bar per epoch on stderr (the
            step, images/s since this process began the epoch, the running loss
            and Dice, the time left); then one line per epoch on stdout, the
            only progress in a log file or a pipe:
              epoch 3/20  loss -0.4301  dice 0.4301  val_loss -0.3712
                val_dice 0.3712  val_kaggle 0.5120 (empty 0.6000)  36.0 img/s
                41.3 s  (saved)
            (one line; empty: the validation score of predicting nothing, the
            bar a useful model must clear). Notes (data sizes, resuming) and a
            closing summary go to stderr. --quiet keeps only warnings, errors and
            the summary;
            --verbose adds a line per step, its loss and the milliseconds of
            each phase:
              \(StepPhase.names)
            and per epoch the time by phase and by kind of layer.

            Examples:
              unet train --data data --checkpoint unet.h5 --epochs 20
              unet train --data data --checkpoint unet.h5 --resume --quiet
              mpirun -np 2 unet train --data data --checkpoint unet.h5 \\
                  --timeline timeline.json
            """
    )

    @Option(help: "The folder `unet prepare` wrote.") var data: String
    @Option(help: "Where to save the best checkpoint (the latest goes beside it as *.last.h5, the metrics log as *.csv).") var checkpoint: String
    @OptionGroup var options: TrainingOptions

    func run() throws {
        Job.run(collectiveTimeout: options.collectiveTimeout) { try train($0, threads: $1) }
    }

    /// Rank 0 reads the data (and the checkpoint when resuming), preprocesses, and broadcasts the
    /// arrays; `TrainingRun` does the rest (the epochs, the best, the saves, a stop); this prints
    /// what happens, on rank 0, and writes the timeline.
    func train(_ comm: any Communicator, threads: KernelThreads) throws {
        comm.annotate(CollectiveContext("setup"))
        let config = options.modelConfiguration
        let root = comm.isRoot
        let say = Say(options.verbosity, enabled: root)
        guard options.batchSize >= comm.size else {
            throw ValidationError("--batch-size \(options.batchSize) is smaller than the job's \(comm.size) ranks: every rank needs at least one image per step")
        }
        let runStart = monotonicSeconds()
        let files = RunFiles(configuration: config, best: checkpoint, latest: lastCheckpointPath(checkpoint),
                             log: MetricsLog(besideCheckpoint: checkpoint))
        // The timeline: every rank records, rank 0 writes (an empty trace first, so an
        // unwritable path fails now rather than after the first epoch).
        let timeline = options.timeline == nil ? nil : try Timeline.synchronized(over: comm)
        let trace = TraceFile(path: options.timeline, timeline: timeline, comm: comm,
                              metadata: [("command", "unet train"), ("ranks", "\(comm.size)"), ("model", "\(config)"),
                                         ("batch_size", "\(options.batchSize)"),
                                         ("clock", "seconds since a barrier at the start, on each rank's monotonic clock")])
        if root { try trace.write() }

        var trainSet = Samples(rows: options.rows, cols: options.cols, images: [])
        var validationSet = trainSet
        var resumed: (parameters: [Float], state: TrainingState)? = nil
        var normalisation: (mean: Float, std: Float) = (0, 1)  // rank 0's; only it writes checkpoints
        let readStart = monotonicSeconds()
        if root {
            // Every input is there before anything is read (or written).
            try DataFolder(path: data).require(DataFolder.trainingFiles)
            // The checkpoint's folder is made if missing, as Keras' ModelCheckpoint does.
            try createFolders(containing: checkpoint)
            if options.resume {
                if fileExists(files.latest) {
                    let last = try Checkpoint.read(from: files.latest, expecting: config)
                    guard let state = last.state else { throw DataError(files.latest, "has no training state to resume from") }
                    if state.seed != options.seed {
                        say.warning("train: resuming with the checkpoint's seed \(state.seed) (not --seed \(options.seed)), so the shuffles continue as they began")
                    }
                    if state.learningRate != options.lr {
                        say.warning("train: continuing with --lr \(options.lr) (the checkpoint was trained with \(state.learningRate))")
                    }
                    resumed = (last.parameters, state)
                } else {
                    say.warning("train: --resume: no \(files.latest) yet, starting from scratch")
                }
            }
            var (all, subjects) = try DataFolder(path: data).loadTraining(rows: options.rows, cols: options.cols)
            let (trainIndices, validationIndices) = Preprocessing.splitBySubject(subjects, fraction: options.validationSplit)
            let (mean, std) = resumed.map { ($0.state.mean, $0.state.std) } ?? Preprocessing.meanAndStd(all.subset(trainIndices).images)
            Preprocessing.normalize(&all.images, mean: mean, std: std)
            normalisation = (mean, std)
            trainSet = all.subset(trainIndices)
            validationSet = all.subset(validationIndices)
            let heldSubjects = Set(validationIndices.map { subjects[$0] }).count
            subjects = []
            guard trainSet.count >= comm.size else {
                throw DataError(data, "\(trainSet.count) training images cannot be shared by \(comm.size) ranks")
            }
            let empty = KaggleScore.emptyPrediction(validationSet).map { String(format: "; predicting nothing scores %.4f", $0) } ?? ""
            say.note("train: \(trainSet.count) training images, \(validationSet.count) validation images (\(heldSubjects) subjects held out\(empty)); \(config); \(config.parameterCount) parameters; \(comm.size) rank\(comm.size == 1 ? "" : "s")")
            timeline?.record(.readData, epoch: 0, from: readStart, to: monotonicSeconds())
        }
        // Every rank gets the starting point, the preprocessed arrays and the state from rank 0.
        let broadcastStart = monotonicSeconds()
        let start = try TrainingRun.Start.agreed(seed: options.seed, resuming: resumed?.state, over: comm)
        if start.epochsDone >= options.epochs && !(start.epochsDone == 0 && options.epochs == 0) {
            say.summary("train: \(files.latest) already holds epoch \(start.epochsDone) of \(options.epochs): nothing to do")
            return
        }
        try trainSet.broadcast(comm)
        try validationSet.broadcast(comm)
        let globalBatch = min(options.batchSize, trainSet.count)
        let model = try UNet(configuration: config, seed: start.seed,
                             maxBatch: Trainer.localBatchSize(globalBatch, ranks: comm.size), threads: threads)
        let trainer = Trainer(model: model, adam: Adam(parameterCount: config.parameterCount, learningRate: options.lr),
                              batchSize: globalBatch, seed: start.seed, communicator: comm)
        if let state = resumed?.state {
            let within = state.epochStep > 0 ? ", step \(state.epochStep) of epoch \(state.epoch + 1)" : ""
            say.note("train: resuming after epoch \(state.epoch)\(within) (Adam step \(state.adamStep)) from \(files.latest)")
        }
        let run = try TrainingRun(trainer: trainer, start: start, learningRate: options.lr, normalisation: normalisation,
                                  resumed: resumed, store: root ? files : nil)
        resumed = nil  // the run holds the weights and Adam's state now: no second copy
        timeline?.record(.broadcast, epoch: 0, from: broadcastStart, to: monotonicSeconds())
        trainer.timeline = timeline
        say.detail("train: metrics log \(files.log.path)\(options.timeline.map { ", timeline \($0)" } ?? "")")

        if options.epochs == 0 {
            try run.saveInitial()
            say.summary("train: --epochs 0: wrote the initial weights to \(checkpoint) and \(files.latest)")
            return
        }
        let emptyScore = KaggleScore.emptyPrediction(validationSet)  // the same every epoch
        let bar = EpochBar(enabled: root && options.verbosity == .normal)
        var phases = PhaseTotals()  // --verbose: rank 0's time by phase in the epoch
        model.profiling = root && options.verbosity == .verbose  // the layer times --verbose prints
        let hooks = TestHooks(rank: comm.rank)
        StopSignal.install()
        trainer.stopRequested = { StopSignal.received != 0 }
        while run.epochsDone < options.epochs {
            let epoch = run.epochsDone + 1
            phases = PhaseTotals()
            model.times = UNet.LayerTimes()
            var layers = UNet.LayerTimes()  // the epoch's steps' (not the validation pass's)
            let result = try run.trainEpoch(trainSet, validation: validationSet) { progress in
                if progress.step == progress.steps { layers = model.times }
                if root {
                    bar.update(progress, of: options.epochs)
                    if options.verbosity == .verbose {
                        phases.add(progress.clock)
                        say.line(Self.stepLine(progress))
                    }
                }
                hooks.afterStep(trainer.adam.step)
                if hooks.corruptRank == comm.rank && progress.step == progress.steps {
                    // Test hook (Launch/test.sh): one replica drifts, and the replica check must catch it.
                    model.parameters[0] = model.parameters[0].nextUp
                }
            }
            switch result {
            case .stopped(let at):
                // Every rank stops after the same step; rank 0 saved where, then all exit.
                let signal = StopSignal.received
                bar.clear()
                say.summary("train: stopped by \(StopSignal.name(signal)) in epoch \(epoch) after step \(at.step) (Adam step \(trainer.adam.step));"
                    + " saved \(files.latest); continue with --resume")
                try trace.gatherAndWrite(epoch: epoch)
                throw StoppedBySignal(signal: signal == 0 ? SIGTERM : signal)
            case .completed(let end):
                bar.clear()
                say.epoch(Self.line(end.record, of: options.epochs, saved: end.improved, empty: emptyScore))
                if options.verbosity == .verbose {
                    say.line(phases.line(epoch: epoch, layers: layers, validation: end.validation?.seconds,
                                         checkpoint: end.saveSeconds))
                }
            }
            try trace.gatherAndWrite(epoch: epoch)
        }
        if root {
            let trained = start.epochsDone + 1 == options.epochs ? "epoch \(options.epochs)" : "epochs \(start.epochsDone + 1)-\(options.epochs)"
            var summary = "train: done: \(trained) of \(options.epochs) in \(shortDuration(monotonicSeconds() - runStart))"
            if let top = run.history.min(by: { TrainingRun.score($0) < TrainingRun.score($1) }) {
                let what = top.valLoss == nil ? "loss" : "val_loss"
                summary += String(format: "; best %@ (epoch %d, %@ %.4f)", checkpoint, top.epoch, what, TrainingRun.score(top))
            }
            summary += "; latest \(files.latest); metrics \(files.log.path)"
            if let path = options.timeline { summary += "; timeline \(path)" }
            say.summary(summary)
        }
    }

    /// An epoch's line; `empty`: the validation set's score of predicting nothing, beside
    /// val_kaggle (what a useful model must beat).
    static func line(_ r: EpochRecord, of epochs: Int, saved: Bool, empty: Double? = nil) -> String {
        func f(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
        var s = "epoch \(r.epoch)/\(epochs)  loss \(f(r.loss))  dice \(f(r.dice))"
        if r.valLoss != nil {
            s += "  val_loss \(f(r.valLoss))  val_dice \(f(r.valDice))  val_kaggle \(f(r.valKaggle))"
            if let empty { s += " (empty \(f(empty)))" }
        }
        s += String(format: "  %.1f img/s  %.1f s", r.imagesPerSecond, r.seconds)
        if saved { s += "  (saved)" }
        return s
    }

    /// `--verbose`: one line per step, rank 0's phases in milliseconds.
    static func stepLine(_ p: StepProgress) -> String {
        let c = p.clock
        func ms(_ seconds: Double) -> String { String(format: "%.1f", seconds * 1000) }
        return String(format: "  epoch %d step %d/%d  batch_loss %.4f  loss %.4f  dice %.4f  ms: ", p.epoch, p.step, p.steps,
                      p.batchLoss, p.loss, p.dice)
            + StepPhase.allCases.map { "\($0.name) \(ms(c.seconds($0)))" }.joined(separator: "  ") + "  step \(ms(c.total))"
    }
}

/// What `unet train` says, on rank 0 only, by `--quiet` / `--verbose`: progress lines on stdout;
/// notes, warnings and the closing summary on stderr.
struct Say {
    let verbosity: Verbosity
    let enabled: Bool

    init(_ verbosity: Verbosity, enabled: Bool) {
        self.verbosity = verbosity
        self.enabled = enabled
    }

    /// Informational (sizes, resuming): not with --quiet.
    func note(_ text: String) {
        if enabled && verbosity != .quiet { Terminal.writeError(text + "\n") }
    }
    /// Only with --verbose.
    func detail(_ text: String) {
        if enabled && verbosity == .verbose { Terminal.writeError(text + "\n") }
    }
    /// Something the user should know even with --quiet (a setting overridden, a start from scratch).
    func warning(_ text: String) {
        if enabled { Terminal.writeError(text + "\n") }
    }
    /// The last line of a run (also with --quiet).
    func summary(_ text: String) { warning(text) }
    /// An epoch's line on stdout: not with --quiet.
    func epoch(_ text: String) {
        guard enabled && verbosity != .quiet else { return }
        print(text)
        fflushStdout()
    }
    /// A --verbose line on stdout.
    func line(_ text: String) {
        guard enabled && verbosity == .verbose else { return }
        print(text)
        fflushStdout()
    }
}

/// `--verbose`: rank 0's time by phase over an epoch's steps.
struct PhaseTotals {
    var steps = 0
    var seconds = [Double](repeating: 0, count: StepPhase.allCases.count), total = 0.0

    mutating func add(_ c: StepClock) {
        steps += 1
        for phase in StepPhase.allCases { seconds[phase.rawValue] += c.seconds(phase) }
        total += c.total
    }

    func line(epoch: Int, layers: UNet.LayerTimes, validation: Double?, checkpoint: Double) -> String {
        func s(_ x: Double) -> String { String(format: "%.2f s", x) }
        func share(_ x: Double) -> String { total > 0 ? String(format: " (%.0f%%)", 100 * x / total) : "" }
        var text = "  epoch \(epoch) on rank 0: \(steps) steps \(s(total)):"
        for phase in StepPhase.allCases {
            let x = seconds[phase.rawValue]
            text += " \(phase.name) \(s(x))\(share(x)),"
        }
        text += " layers: conv forward \(s(layers.convolutionForward)), conv backward data \(s(layers.convolutionBackwardData)),"
        text += " conv backward weights \(s(layers.convolutionBackwardWeights)), pooling \(s(layers.pooling)),"
        text += " upsampling \(s(layers.upsampling));"
        if let validation { text += " validation \(s(validation))," }
        text += " checkpoint and log \(s(checkpoint))"
        return text
    }
}

/// The `--timeline` file: rank 0 keeps every rank's events and rewrites the whole trace
/// atomically after each epoch (a crash leaves the trace of the epochs before).
final class TraceFile {
    let path: String?
    let timeline: Timeline?
    let comm: any Communicator
    let metadata: [(String, String)]
    private var events: [TimelineEvent] = []

    init(path: String?, timeline: Timeline?, comm: any Communicator, metadata: [(String, String)]) {
        self.path = path
        self.timeline = timeline
        self.comm = comm
        self.metadata = metadata
    }

    /// Rank 0: writes the trace of the events gathered so far.
    func write() throws {
        guard let path, comm.isRoot else { return }
        var extra = metadata
        if let dropped = timeline?.dropped, dropped > 0 { extra.append(("dropped_steps_rank_0", "\(dropped)")) }
        try writeAtomically(path, contents: Timeline.chromeTrace(events, ranks: comm.size, metadata: extra))
    }

    /// Every rank: sends its events to rank 0, which rewrites the trace.
    func gatherAndWrite(epoch: Int) throws {
        guard let timeline else { return }
        events += try timeline.gather(over: comm, epoch: epoch)
        try write()
    }
}

/// "42s", "3m05s", "2h07m".
func shortDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let t = Int(seconds.rounded())
    func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
    if t < 60 { return "\(t)s" }
    if t < 3600 { return "\(t / 60)m\(two(t % 60))s" }
    return "\(t / 3600)h\(two(t % 3600 / 60))m"
}

/// The training recipe and the model's shape: `unet train`'s options, shared with `unet run`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Total epochs of the run (0: only write the initial, untrained weights).") var epochs: Int = 20
    @Option(name: .customLong("batch-size"), help: "Images per step (the global batch: the ranks share it).") var batchSize: Int = 32
    @Option(help: "Adam's learning rate.") var lr: Float = 1e-5
    @Option(name: .customLong("validation-split"), help: "Share of images held out, by whole subjects (0: none).") var validationSplit: Double = 0.2
    @Option(help: "Model input height (a multiple of 2^depth).") var rows: Int = 64
    @Option(help: "Model input width (a multiple of 2^depth).") var cols: Int = 80
    @Option(help: "Filters of the first level (doubled at each level).") var filters: Int = 32
    @Option(help: "Number of poolings.") var depth: Int = 4
    @Option(help: "Decoder upsampling: nearest (the original) or transpose.") var upsample: Upsampling = .nearest
    @Option(help: "Seed of the initialisation and the shuffles.") var seed: UInt64 = 1
    @Option(name: .customLong("collective-timeout"), help: """
        Seconds a collective (allreduce, broadcast) may wait for the other ranks before the job \
        is aborted with a message naming the operation and the step (0: wait forever). While \
        rank 0 reads the data at the start, the others wait at least 600 s.
        """) var collectiveTimeout: Double = 600
    @Flag(help: """
        Continue from the latest state (FILE with .last before the extension) up to --epochs in \
        total; starts afresh when there is none yet, so the same command serves after a crash.
        """) var resume = false
    @Flag(name: [.short, .long], help: """
        Print only warnings, errors and the closing summary (no bar, no epoch lines; the metrics \
        log is written as usual).
        """) var quiet = false
    @Flag(name: [.short, .long], help: """
        Print a line per step (loss; milliseconds in each phase, \(StepPhase.names); on \
        rank 0) instead of the bar, and per epoch the time by phase and by kind of layer.
        """) var verbose = false
    @Option(help: ArgumentHelp("""
        Write a Chrome trace of where every rank's time goes to this file (JSON; open it in \
        chrome://tracing or https://ui.perfetto.dev): per step its phases, \(StepPhase.names) \
        (wait: the Dice sums' allreduce, waiting for the slowest rank); per epoch validation, \
        replica check, checkpoint; rewritten after every epoch.
        """, valueName: "file")) var timeline: String?

    var verbosity: Verbosity { quiet ? .quiet : verbose ? .verbose : .normal }

    var modelConfiguration: UNetConfiguration {
        UNetConfiguration(rows: rows, cols: cols, filters: filters, depth: depth, upsample: upsample)
    }

    func validate() throws {
        guard epochs >= 0 else { throw ValidationError("--epochs must be at least 0 (0 writes the initial weights)") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard lr > 0 else { throw ValidationError("--lr must be positive") }
        guard collectiveTimeout >= 0 else { throw ValidationError("--collective-timeout must be 0 (off) or a number of seconds") }
        guard !(quiet && verbose) else { throw ValidationError("--quiet and --verbose exclude each other") }
        guard timeline?.isEmpty != true else { throw ValidationError("--timeline needs a file name") }
        guard (0..<1).contains(validationSplit) else { throw ValidationError("--validation-split must be in [0, 1)") }
        do { try modelConfiguration.validate() } catch { throw ValidationError("\(error)") }
    }

}

/// How much training prints (`--quiet`, `--verbose`).
enum Verbosity { case quiet, normal, verbose }

/// A live progress bar per epoch on a terminal (stderr), nothing otherwise:
///
///     epoch 3/20 [=========>                    ] step 12/40  36.2 img/s  loss -0.4123  dice 0.4123  ETA 1m05s
///
/// The rate counts the images this process trained in the epoch over the time since it began
/// the epoch, so after a resume in the middle of an epoch it is not inflated by the steps
/// done before. Redrawn at most 10 times a second (nothing is formatted in between).
final class EpochBar {
    private let live: Bool
    private var lastDraw = 0.0
    private var drawn = false

    init(enabled: Bool) { live = enabled && Terminal.standardErrorIsTerminal }

    func update(_ p: StepProgress, of epochs: Int) {
        guard live else { return }
        let now = monotonicSeconds()
        guard now - lastDraw >= 0.1 || p.step == p.steps else { return }
        lastDraw = now
        Terminal.writeError("\r" + Self.text(p, of: epochs, now: now, columns: Terminal.columns) + "\u{1B}[K")
        drawn = true
    }

    static func text(_ p: StepProgress, of epochs: Int, now: Double, columns: Int) -> String {
        let head = "epoch \(p.epoch)/\(epochs) "
        let tail = String(format: " step %d/%d  %.1f img/s  loss %.4f  dice %.4f  ETA ", p.step, p.steps,
                          p.imagesPerSecond(now: now), p.loss, p.dice)
            + (p.secondsLeft(now: now).map(shortDuration) ?? "?")
        let width = min(30, columns - 1 - head.count - tail.count - 2)
        guard width >= 5 else { return String((head + tail.dropFirst()).prefix(max(columns - 1, 1))) }
        let filled = min(width, width * p.step / max(p.steps, 1))
        let arrow = filled < width ? ">" + String(repeating: " ", count: width - filled - 1) : ""
        return head + "[" + String(repeating: "=", count: filled) + arrow + "]" + tail
    }

    /// Erases the bar (before a line is printed).
    func clear() {
        if drawn { Terminal.writeError("\r\u{1B}[K") }
        drawn = false
        lastDraw = 0
    }
}

extension Upsampling: ExpressibleByArgument {}
