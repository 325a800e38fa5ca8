import ArgumentParser
import DataIO
import Distributed
import Kernels
import Model

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The whole pipeline: (synth,) prepare, train, predict, submit.",
        discussion: """
            Reads:  --raw DIR in the Kaggle layout (train/, test/); without --raw, a
                    synthetic set is generated once into OUT/raw-synthetic (and
                    reused after).
            Writes: OUT/data/*.npy (unet prepare), OUT/unet.h5, OUT/unet.last.h5
                    and the metrics log OUT/unet.csv (unet train),
                    OUT/imgs_mask_test.npy (unet predict), OUT/submission.csv
                    (unet submit); with --timeline FILE, the training's Chrome
                    trace. `unet report --checkpoint OUT/unet.h5 --data OUT/data`
                    then shows the run on one page.

            Each stage is the subcommand of the same name with these options
            (--quiet and --verbose set what the training stage prints). Under
            mpirun, rank 0 alone generates, prepares and submits; training and
            prediction run on every rank. With --resume, training continues
            from OUT/unet.last.h5.

            Examples:
              unet run --out out --epochs 20
              unet run --raw kaggle --out out --lr 1e-5 --resume
              mpirun -np 2 -x OPENBLAS_NUM_THREADS=1 unet run --out out
            """
    )

    @Option(help: "Raw data in the Kaggle layout (default: a synthetic set in OUT/raw-synthetic).") var raw: String?
    @Option(help: "The folder for every output.") var out: String = "out"
    @Option(name: .customLong("synth-train"), help: "Synthetic training images (without --raw).") var synthTrain: Int = 120
    @Option(name: .customLong("synth-test"), help: "Synthetic test images (without --raw).") var synthTest: Int = 30
    @Option(name: .customLong("synth-subjects"), help: "Synthetic subjects (without --raw).") var synthSubjects: Int = 6
    @Option(name: .customLong("synth-seed"), help: "Seed of the synthetic set (without --raw).") var synthSeed: UInt64 = 42

    @OptionGroup var training: TrainingOptions
    @Option(help: "Submission threshold on the probabilities.") var threshold: Float = 0.5
    @Option(name: .customLong("min-pixels"), help: "Masks with fewer pixels are submitted empty.") var minPixels: Int = 10

    /// Parses a stage's own command from arguments, so its validation and defaults apply.
    func stage<C: ParsableCommand>(_ type: C.Type, _ arguments: [String]) throws -> C {
        do { return try C.parse(arguments) } catch {
            throw ValidationError("\(C.configuration.commandName ?? "stage"): \(C.message(for: error))")
        }
    }

    func run() throws {
        let data = out + "/data", checkpoint = out + "/unet.h5", masks = out + "/imgs_mask_test.npy"
        var train = try stage(Train.self, ["--data", data, "--checkpoint", checkpoint])
        train.options = training
        let predict = try stage(Predict.self, ["--data", data, "--checkpoint", checkpoint, "--out", masks])
        let submit = try stage(Submit.self, ["--data", data, "--masks", masks, "--out", out + "/submission.csv",
                                             "--threshold", "\(threshold)", "--min-pixels=\(minPixels)"])
        Job.run(collectiveTimeout: training.collectiveTimeout) { comm, threads in
            if comm.isRoot {
                try makeDirectory(out)
                var rawFolder = raw ?? out + "/raw-synthetic"
                if raw == nil {
                    if fileExists(rawFolder) {
                        Terminal.writeError("run: reusing the synthetic set in \(rawFolder) (delete it for a new one)\n")
                    } else {
                        try stage(Synth.self, ["--out", rawFolder, "--train", "\(synthTrain)", "--test", "\(synthTest)",
                                               "--subjects", "\(synthSubjects)", "--seed", "\(synthSeed)"]).run()
                    }
                }
                while rawFolder.count > 1 && rawFolder.hasSuffix("/") { rawFolder.removeLast() }
                try stage(Prepare.self, ["--raw", rawFolder, "--out", data]).run()
            }
            try comm.barrier()
            try train.train(comm, threads: threads)
            try predict.predict(comm, threads: threads)
            if comm.isRoot {
                try submit.run()
                Terminal.writeError("run: done: \(out)/submission.csv (masks \(masks), checkpoints \(checkpoint) and \(lastCheckpointPath(checkpoint)))\n")
            }
        }
    }
}

/// Creates `path` (and its parents) unless it exists.
func makeDirectory(_ path: String) throws {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for part in path.split(separator: "/") {
        prefix += part
        if !fileExists(prefix) && mkdir(prefix, 0o755) != 0 && errno != EEXIST {
            throw DataError(prefix, "cannot create the folder: \(String(cString: strerror(errno)))")
        }
        prefix += "/"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
