import ArgumentParser
import DataIO
import Training
import Dispatch
import Foundation
import Synchronization
import Synthetic
import Kernels

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate a synthetic ultrasound data set in the Kaggle layout.",
        usage: """
            unet synth --out <out> [--train <train>] [--test <test>]
              [--subjects <subjects>] [--seed <seed>] [--force] [--threads <threads>]
            """,
        discussion: """
            For running the whole pipeline without the Kaggle download. The images
            imitate neck ultrasound: Rayleigh-like speckle, tissue bands and bright
            fascia lines, acoustic shadows below bright structures, depth
            attenuation; in about 40% of them a dark oval nerve with a bright rim
            and inner texture, whose outline is the mask. Images of one subject
            share their anatomy. Deterministic for a seed.

            Reads:  nothing.
            Writes: OUT/train/<subject>_<n>.tif and OUT/train/<subject>_<n>_mask.tif
                    (masks 0/255), OUT/test/<id>.tif with ids from 1; 580 wide x
                    420 high, 8-bit grayscale. The folder is written under a
                    temporary name and renamed when complete; an existing OUT is
                    an error unless --force replaces it.

            Example:
              unet synth --out raw --train 200 --test 50 --seed 7
            """
    )

    @Option(help: "The folder to create.")
    var out: String

    @Option(help: "Training images (each with a mask).")
    var train: Int = 120

    @Option(help: "Test images.")
    var test: Int = 30

    @Option(help: "Subjects the training images are spread over.")
    var subjects: Int = 6

    @Option(help: "Random seed: the same seed gives the same files.")
    var seed: UInt64 = 42

    @Flag(help: "Replace OUT if it exists.")
    var force = false

    @Option(help: "Threads generating images (default: every core).")
    var threads: Int?

    func validate() throws {
        guard train >= 1 else { throw ValidationError("--train must be at least 1") }
        guard test >= 1 else { throw ValidationError("--test must be at least 1") }
        guard subjects >= 1, subjects <= train else { throw ValidationError("--subjects must be between 1 and --train") }
    }

    func run() throws {
        let start = monotonicSeconds()
        let dataset: SyntheticDataset
        do {
            dataset = try SyntheticDataset(trainCount: train, testCount: test, subjects: subjects, seed: seed)
        } catch {
            throw ValidationError(error.description)
        }
        let fm = FileManager.default
        let final = out.hasSuffix("/") && out.count > 1 ? String(out.dropLast()) : out
        if fm.fileExists(atPath: final) && !force {
            Terminal.fail(DataError(final, "already exists (use --force to replace it)"))
        }
        let staging = StagedOutputs.temporaryPath(for: final)
        do {
            try? fm.removeItem(atPath: staging)
            try fm.createDirectory(atPath: staging + "/train", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: staging + "/test", withIntermediateDirectories: true)
        } catch {
            Terminal.fail(DataError(final, "cannot create: \(error.localizedDescription)"))
        }

        // One job per file pair; jobs are independent (each image's randomness depends only on
        // the seed and its name), so they run on every core.
        enum Job { case train(subject: Int, index: Int), test(id: Int) }
        let jobs = dataset.trainSamples.map { Job.train(subject: $0.subject, index: $0.index) }
            + (1...test).map { Job.test(id: $0) }
        let line = ProgressLine("synth: wrote")
        let done = Mutex(0)
        let firstError = Mutex<(Int, any Error)?>(nil)
        let workers = min(threads ?? ProcessInfo.processInfo.activeProcessorCount, jobs.count)
        let (w, h) = (dataset.width, dataset.height)
        DispatchQueue.concurrentPerform(iterations: max(1, workers)) { worker in
            for j in stride(from: worker, to: jobs.count, by: max(1, workers)) {
                do {
                    switch jobs[j] {
                    case let .train(subject, index):
                        let (image, mask) = dataset.trainImage(subject: subject, index: index)
                        try TIFF.writeGray8(image, width: w, height: h, to: "\(staging)/train/\(subject)_\(index).tif")
                        try TIFF.writeGray8(mask, width: w, height: h, to: "\(staging)/train/\(subject)_\(index)_mask.tif")
                    case let .test(id):
                        try TIFF.writeGray8(dataset.testImage(id: id), width: w, height: h, to: "\(staging)/test/\(id).tif")
                    }
                } catch {
                    firstError.withLock { if $0 == nil || $0!.0 > j { $0 = (j, error) } }
                }
                let n = done.withLock { $0 += 1; return $0 }
                line.update(n, jobs.count)
            }
        }
        if let (_, error) = firstError.withLock({ $0 }) {
            try? fm.removeItem(atPath: staging)
            Terminal.fail(error)
        }
        do {
            if force && fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
            try fm.moveItem(atPath: staging, toPath: final)
        } catch {
            try? fm.removeItem(atPath: staging)
            Terminal.fail(DataError(final, "cannot move into place: \(error.localizedDescription)"))
        }
        line.finish("\(train) training images with masks and \(test) test images to \(final)/ in \(String(format: "%.1f", monotonicSeconds() - start)) s")
    }
}
