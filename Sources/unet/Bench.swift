import ArgumentParser
import Foundation
import Model
import Random
import Distributed
import Training
import Kernels

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training or inference throughput on random data.",
        usage: """
            unet bench [--mode train|infer] [--steps <n>] [--warmup <n>] [--json]
              [--rows <rows>] [--cols <cols>] [--batch-size <n>] [--filters <n>]
              [--depth <n>] [--upsample nearest|transpose]
            """,
        discussion: """
            Reads nothing and writes nothing: builds the model, fills a batch with
            random images and masks, runs --warmup untimed steps, then --steps timed
            ones, and prints images/s, effective GFLOP/s (3 x the forward
            multiply-adds x 2 per training image, 1 x for inference), the share of a
            step spent in the gradient allreduce, and peak resident memory: the
            job's (the sum over ranks) and, under mpirun, the largest rank's (JSON:
            peak_rss_total_mb, peak_rss_mb). Build in release.

            Under mpirun, --batch-size is the global batch, shared by the ranks as
            `unet train` shares it; rank 0 prints.

            Examples:
              unet bench --mode train --steps 10
              mpirun -np 2 -x OPENBLAS_NUM_THREADS=1 unet bench --steps 10
              unet bench --mode infer --rows 96 --cols 96 --upsample transpose \\
                  --json
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable { case train, infer }

    @Option(help: "Model input height (a multiple of 2^depth).") var rows: Int = 64
    @Option(help: "Model input width (a multiple of 2^depth).") var cols: Int = 80
    @Option(name: .customLong("batch-size"), help: ArgumentHelp("Images per step (the global batch under mpirun).", valueName: "n"))
    var batchSize: Int = 32
    @Option(help: ArgumentHelp("Filters of the first level (doubled at each level).", valueName: "n")) var filters: Int = 32
    @Option(help: ArgumentHelp("Number of poolings.", valueName: "n")) var depth: Int = 4
    @Option(help: "Decoder upsampling: nearest (the original) or transpose.") var upsample: Upsampling = .nearest
    @Option(help: ArgumentHelp("Timed steps.", valueName: "n")) var steps: Int = 5
    @Option(help: ArgumentHelp("Untimed steps first.", valueName: "n")) var warmup: Int = 1
    @Option(help: "train: forward, loss, backward and Adam; infer: forward only.") var mode: Mode = .train
    @Flag(help: "End with one JSON object on its own line.") var json = false

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        guard warmup >= 0 else { throw ValidationError("--warmup must not be negative") }
    }

    func run() throws {
        Job.run { try bench($0, threads: $1) }
    }

    func bench(_ comm: any Communicator, threads: KernelThreads) throws {
        let config = UNetConfiguration(rows: rows, cols: cols, filters: filters, depth: depth, upsample: upsample)
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        guard batchSize >= comm.size else { throw ValidationError("--batch-size must be at least the number of ranks") }
        // --batch-size is the global batch: each rank takes its share, as `unet train` does.
        let localBatch = Trainer.localBatchSize(batchSize, ranks: comm.size)
        let model = try UNet(configuration: config, seed: 1, maxBatch: localBatch, threads: threads)
        var rng = SeededGenerator(seed: 5)
        let plane = rows * cols
        var images = [Float](), masks = [Float]()
        for _ in 0..<(batchSize * plane) {
            images.append(Float(rng.normal()))
            masks.append(rng.bernoulli(0.05) ? 1 : 0)
        }
        let data = Samples(rows: rows, cols: cols, images: images, masks: masks)
        let trainer = Trainer(model: model, adam: Adam(parameterCount: config.parameterCount, learningRate: 1e-5),
                              batchSize: batchSize, seed: 1, communicator: comm)
        let batch = Array(0..<batchSize)[...]
        let mine = comm.share(of: batchSize)
        func step() throws {
            switch mode {
            case .train: try trainer.step(data, batch)
            case .infer:
                model.input.baseAddress!.update(from: images, count: mine.count * plane)
                model.forward(batch: mine.count)
            }
        }
        for _ in 0..<warmup { try step() }
        try comm.barrier()
        let before = (trainer.allreduceSeconds, trainer.lossSeconds, trainer.adamSeconds)
        model.times = UNet.LayerTimes()
        model.profiling = true
        let start = monotonicSeconds()
        var stepSeconds = [Double](repeating: 0, count: steps)
        for i in 0..<steps {
            let stepStart = monotonicSeconds()
            try step()
            stepSeconds[i] = monotonicSeconds() - stepStart
        }
        let localSeconds = monotonicSeconds() - start
        try comm.barrier()
        let seconds = monotonicSeconds() - start
        let allreduceShare = (trainer.allreduceSeconds - before.0) / seconds
        // Rank 0's time per kind of work, as shares of its timed steps (the rest: loading the
        // batch, waiting for the other ranks at the end).
        let t = model.times
        let kinds: [(String, Double)] = [
            ("conv_forward", t.convolutionForward), ("conv_backward_data", t.convolutionBackwardData),
            ("conv_backward_weights", t.convolutionBackwardWeights), ("pooling", t.pooling),
            ("upsampling", t.upsampling), ("concat", 0), ("loss", trainer.lossSeconds - before.1),
            ("adam", trainer.adamSeconds - before.2), ("allreduce", trainer.allreduceSeconds - before.0),
        ]
        let other = localSeconds - kinds.reduce(0) { $0 + $1.1 }
        var rssPerRank = [peakResidentMegabytes()]
        if comm.size > 1 {
            var all = [Double](repeating: 0, count: comm.size)
            all[comm.rank] = rssPerRank[0]
            try comm.allreduceSum(&all)
            rssPerRank = all
        }
        guard comm.isRoot else { return }
        let imagesPerSecond = Double(steps * batchSize) / seconds
        let flopsPerImage = Double(config.forwardMultiplyAdds) * 2 * (mode == .train ? 3 : 1)
        let gflops = imagesPerSecond * flopsPerImage / 1e9
        // The largest rank's peak, and the job's: the sum over ranks, what the job as a whole
        // holds, to set beside one process of another framework (it counts the shared libraries'
        // pages once per rank, as each rank maps them).
        let rss = rssPerRank.max()!, rssTotal = rssPerRank.reduce(0, +)
        print(String(format: "%@ %dx%d batch %d filters %d depth %d %@, %d rank(s): %.2f images/s, %.1f GFLOP/s, allreduce %.1f%% of a step, peak RSS %.0f MB",
                     mode.rawValue, rows, cols, batchSize, filters, depth, upsample.rawValue, comm.size,
                     imagesPerSecond, gflops, allreduceShare * 100, rssTotal)
              + (comm.size > 1 ? String(format: " in all %d ranks (largest rank %.0f MB)", comm.size, rss) : ""))
        // On a shared machine the fastest step is the least disturbed one: a steadier figure
        // for comparing two builds than the mean (rank 0's steps).
        let sorted = stepSeconds.sorted()
        let bestImagesPerSecond = Double(batchSize) / sorted[0]
        let medianImagesPerSecond = Double(batchSize) / sorted[sorted.count / 2]
        print(String(format: "per step (rank 0): best %.2f images/s, median %.2f images/s", bestImagesPerSecond, medianImagesPerSecond))
        print("time per step: " + (kinds + [("other", other)]).map { String(format: "%@ %.1f%%", $0.0, 100 * $0.1 / localSeconds) }.joined(separator: ", "))
        if json {
            let shares = (kinds + [("other", other)]).map { "\"\($0.0)\":\($0.1 / localSeconds)" }.joined(separator: ",")
            print("{\"mode\":\"\(mode.rawValue)\",\"shares\":{\(shares)},\"rows\":\(rows),\"cols\":\(cols),\"batch_size\":\(batchSize),\"filters\":\(filters),\"depth\":\(depth),\"upsample\":\"\(upsample.rawValue)\",\"ranks\":\(comm.size),\"images_per_s\":\(imagesPerSecond),\"best_step_images_per_s\":\(bestImagesPerSecond),\"median_step_images_per_s\":\(medianImagesPerSecond),\"gflops\":\(gflops),\"allreduce_share\":\(allreduceShare),\"peak_rss_mb\":\(rss),\"peak_rss_total_mb\":\(rssTotal)}")
        }
    }
}

/// Peak resident set size of this process, in MB (getrusage reports kB on Linux).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}
