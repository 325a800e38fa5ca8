import ArgumentParser
import Foundation
import Model
import Random
import Training

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training or inference throughput on random data.",
        discussion: """
            Reads nothing and writes nothing: builds the model, fills a batch with random images
            and masks, runs --warmup untimed steps, then --steps timed ones, and prints images/s,
            effective GFLOP/s (3 x the forward multiply-adds x 2 per training image, 1 x for
            inference) and peak resident memory. Build in release.

            Examples:
              unet bench --mode train --steps 10
              unet bench --mode infer --rows 96 --cols 96 --upsample transpose --json
            """
    )

    enum Mode: String, ExpressibleByArgument { case train, infer }

    @Option var rows: Int = 64
    @Option var cols: Int = 80
    @Option(name: .customLong("batch-size")) var batchSize: Int = 32
    @Option var filters: Int = 32
    @Option var depth: Int = 4
    @Option var upsample: Upsampling = .nearest
    @Option(help: "Timed steps.") var steps: Int = 5
    @Option(help: "Untimed steps first.") var warmup: Int = 1
    @Option var mode: Mode = .train
    @Flag(help: "End with one JSON object on its own line.") var json = false

    func run() throws {
        let config = UNetConfiguration(rows: rows, cols: cols, filters: filters, depth: depth, upsample: upsample)
        do { try config.validate() } catch { throw ValidationError("\(error)") }
        let model = try UNet(configuration: config, seed: 1, maxBatch: batchSize)
        var rng = SeededGenerator(seed: 5)
        let plane = rows * cols
        var images = [Float](), masks = [Float]()
        for _ in 0..<(batchSize * plane) {
            images.append(Float(rng.normal()))
            masks.append(rng.bernoulli(0.05) ? 1 : 0)
        }
        let data = Samples(rows: rows, cols: cols, images: images, masks: masks)
        let trainer = Trainer(model: model, adam: Adam(parameterCount: config.parameterCount, learningRate: 1e-5),
                              batchSize: batchSize, seed: 1)
        let batch = Array(0..<batchSize)[...]
        func step() {
            switch mode {
            case .train: trainer.step(data, batch)
            case .infer:
                model.input.baseAddress!.update(from: images, count: images.count)
                model.forward(batch: batchSize)
            }
        }
        for _ in 0..<warmup { step() }
        let start = monotonicSeconds()
        for _ in 0..<steps { step() }
        let seconds = monotonicSeconds() - start
        let imagesPerSecond = Double(steps * batchSize) / seconds
        let flopsPerImage = Double(config.forwardMultiplyAdds) * 2 * (mode == .train ? 3 : 1)
        let gflops = imagesPerSecond * flopsPerImage / 1e9
        let rss = peakResidentMegabytes()
        print(String(format: "%@ %dx%d batch %d filters %d depth %d %@: %.2f images/s, %.1f GFLOP/s, peak RSS %.0f MB",
                     mode.rawValue, rows, cols, batchSize, filters, depth, upsample.rawValue,
                     imagesPerSecond, gflops, rss))
        if json {
            print("{\"mode\":\"\(mode.rawValue)\",\"rows\":\(rows),\"cols\":\(cols),\"batch_size\":\(batchSize),\"filters\":\(filters),\"depth\":\(depth),\"upsample\":\"\(upsample.rawValue)\",\"images_per_s\":\(imagesPerSecond),\"gflops\":\(gflops),\"peak_rss_mb\":\(rss)}")
        }
    }
}

/// Peak resident set size of this process, in MB (getrusage reports kB on Linux).
func peakResidentMegabytes() -> Double {
    var usage = rusage()
    getrusage(Int32(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024
}
