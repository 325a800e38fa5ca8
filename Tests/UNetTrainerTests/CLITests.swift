import Foundation
import Testing
import DataIO
import Checkpoint

/// The `unet` tool as a user runs it: exit status, one-line errors, and the files it leaves.
/// `swift test` builds the tool beside the test bundle.
@Suite("unet command line")
struct CLITests {
    static let unet: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("unet").path
    }()

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    /// Runs the tool; `environment` adds to (or overrides) this process's environment.
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: unet)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func synthThenPrepare() throws {
        try withTemporaryDirectory { dir in
            let synth = try Self.run(["synth", "--out", dir + "/raw", "--train", "4", "--test", "2", "--subjects", "2", "--seed", "5"])
            #expect(synth.status == 0, "\(synth.stderr)")
            #expect(listing(dir + "/raw/train") == ["1_1.tif", "1_1_mask.tif", "1_2.tif", "1_2_mask.tif",
                                                     "2_1.tif", "2_1_mask.tif", "2_2.tif", "2_2_mask.tif"])
            #expect(listing(dir + "/raw/test") == ["1.tif", "2.tif"])
            #expect(listing(dir) == ["raw"])  // no temporary folder left

            let image = try TIFF.read(dir + "/raw/train/1_2.tif")
            #expect(image.width == 580 && image.height == 420 && image.bitsPerSample == 8)

            let again = try Self.run(["synth", "--out", dir + "/raw", "--train", "4", "--test", "2", "--subjects", "2"])
            #expect(again.status != 0 && again.stderr.contains("already exists"))

            let prepare = try Self.run(["prepare", "--raw", dir + "/raw", "--out", dir + "/data"])
            #expect(prepare.status == 0, "\(prepare.stderr)")
            #expect(prepare.stderr.contains("4 training images with masks"))
            let images = try NPY.load(dir + "/data/imgs_train.npy", as: UInt8.self)
            #expect(images.shape == [4, 420, 580])
            #expect(Array(images.scalars[(1 * 420 * 580)..<(2 * 420 * 580)]) == image.gray8())
        }
    }

    @Test func badInputIsOneLineNamingTheFileAndNothingIsWritten() throws {
        try withTemporaryDirectory { dir in
            let raw = dir + "/raw"
            try FileManager.default.createDirectory(atPath: raw + "/train", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: raw + "/test", withIntermediateDirectories: true)
            let pixels = [UInt8](repeating: 7, count: 16 * 8)
            try TIFF.writeGray8(pixels, width: 16, height: 8, to: raw + "/train/1_1.tif")
            try TIFF.writeGray8(pixels, width: 16, height: 8, to: raw + "/test/1.tif")
            let result = try Self.run(["prepare", "--raw", raw, "--out", dir + "/data"])
            #expect(result.status == 1)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.count == 1, "\(result.stderr)")
            #expect(lines.first == "error: \(raw)/train/1_1.tif: training image has no mask (expected 1_1_mask.tif or .png beside it)")
            #expect(listing(dir + "/data").isEmpty)
        }
    }

    @Test func trainPredictEvaluate() throws {
        try withTemporaryDirectory { dir in
            #expect(try Self.run(["synth", "--out", dir + "/raw", "--train", "6", "--test", "2", "--subjects", "3"]).status == 0)
            #expect(try Self.run(["prepare", "--raw", dir + "/raw", "--out", dir + "/data"]).status == 0)
            let ckpt = dir + "/unet.h5"
            let train = try Self.run(["train", "--data", dir + "/data", "--checkpoint", ckpt, "--epochs", "2", "--batch-size", "2",
                                      "--rows", "16", "--cols", "16", "--filters", "2", "--depth", "2", "--lr", "1e-3"])
            #expect(train.status == 0, "\(train.stderr)")
            let lines = train.stdout.split(separator: "\n")
            #expect(lines.count == 2 && lines[0].hasPrefix("epoch 1/2  loss ") && lines[1].contains("val_kaggle"), "\(train.stdout)")
            #expect(listing(dir).contains("unet.h5") && listing(dir).contains("unet.last.h5"))

            let predict = try Self.run(["predict", "--data", dir + "/data", "--checkpoint", ckpt, "--out", dir + "/p.npy"])
            #expect(predict.status == 0, "\(predict.stderr)")
            let p = try NPY.load(dir + "/p.npy", as: Float.self)
            #expect(p.shape == [2, 16, 16] && p.scalars.allSatisfy { $0 > 0 && $0 < 1 })

            let evaluate = try Self.run(["evaluate", "--data", dir + "/data", "--checkpoint", ckpt, "--all"])
            #expect(evaluate.status == 0 && evaluate.stdout.hasPrefix("images 6  loss "), "\(evaluate.stdout)\(evaluate.stderr)")

            try writeBytes(Array("not a checkpoint".utf8), dir + "/bad.h5")
            let bad = try Self.run(["predict", "--data", dir + "/data", "--checkpoint", dir + "/bad.h5", "--out", dir + "/q.npy"])
            #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1 && bad.stderr.contains("bad.h5"), "\(bad.stderr)")
            #expect(!listing(dir).contains("q.npy"))
        }
    }

    /// 2 epochs straight and 1 epoch + `--resume` to 2 give bit-identical weights and Adam
    /// state; `--resume` without a checkpoint starts afresh; a resume at the end does nothing;
    /// a checkpoint of another configuration is refused in one line.
    @Test func resumeIsExact() throws {
        try withTemporaryDirectory { dir in
            #expect(try Self.run(["synth", "--out", dir + "/raw", "--train", "10", "--test", "1", "--subjects", "3", "--seed", "2"]).status == 0)
            #expect(try Self.run(["prepare", "--raw", dir + "/raw", "--out", dir + "/data"]).status == 0)
            func train(_ checkpoint: String, epochs: Int, _ extra: [String] = []) throws -> Result {
                try Self.run(["train", "--data", dir + "/data", "--checkpoint", dir + "/" + checkpoint, "--epochs", "\(epochs)",
                              "--batch-size", "3", "--rows", "16", "--cols", "16", "--filters", "2", "--depth", "2",
                              "--lr", "1e-3", "--seed", "4"] + extra)
            }
            #expect(try train("straight.h5", epochs: 2).status == 0)
            let first = try train("resumed.h5", epochs: 1, ["--resume"])  // nothing to resume yet
            #expect(first.status == 0 && first.stderr.contains("starting from scratch"), "\(first.stderr)")
            let second = try train("resumed.h5", epochs: 2, ["--resume"])
            #expect(second.status == 0 && second.stderr.contains("resuming after epoch 1"), "\(second.stderr)")
            #expect(second.stdout.hasPrefix("epoch 2/2"), "\(second.stdout)")
            let a = try Checkpoint.read(from: dir + "/straight.last.h5"), b = try Checkpoint.read(from: dir + "/resumed.last.h5")
            #expect(a.parameters == b.parameters)
            #expect(a.state?.adamM == b.state?.adamM && a.state?.adamV == b.state?.adamV)
            #expect(a.state?.adamStep == b.state?.adamStep && b.state?.epoch == 2)
            #expect(a.state?.history.map(\.loss) == b.state?.history.map(\.loss))
            #expect(a.state?.bestScore == b.state?.bestScore)

            let done = try train("resumed.h5", epochs: 2, ["--resume"])
            #expect(done.status == 0 && done.stderr.contains("nothing to do") && done.stdout.isEmpty, "\(done.stderr)")
            let other = try Self.run(["train", "--data", dir + "/data", "--checkpoint", dir + "/resumed.h5", "--epochs", "3",
                                      "--rows", "16", "--cols", "16", "--filters", "4", "--depth", "2", "--resume"])
            #expect(other.status == 1 && other.stderr.split(separator: "\n").count == 1 && other.stderr.contains("filters"), "\(other.stderr)")
        }
    }

    /// `unet run` chains every stage on a synthetic set and ends with a submission Kaggle takes.
    @Test func runChainsEveryStage() throws {
        try withTemporaryDirectory { dir in
            let out = dir + "/out"
            let run = try Self.run(["run", "--out", out, "--synth-train", "6", "--synth-test", "3", "--synth-subjects", "2",
                                    "--epochs", "1", "--batch-size", "3", "--rows", "16", "--cols", "16", "--filters", "2",
                                    "--depth", "2", "--lr", "1e-3"])
            #expect(run.status == 0, "\(run.stderr)")
            #expect(Set(listing(out)).isSuperset(of: ["data", "raw-synthetic", "unet.h5", "unet.last.h5", "imgs_mask_test.npy", "submission.csv"]),
                    "\(listing(out))")
            let csv = String(decoding: try readBytes(out + "/submission.csv"), as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            #expect(csv.first == "img,pixels" && csv.count == 5 && csv.last == "", "\(csv)")  // header, 3 rows, final newline
            #expect(csv[1].hasPrefix("1,") && csv[2].hasPrefix("2,") && csv[3].hasPrefix("3,"))
        }
    }

    static let subcommands = ["synth", "prepare", "train", "predict", "submit", "run", "evaluate", "report", "compare",
                              "bench", "info"]

    /// Every subcommand's --help says what it reads and writes and gives an example, in 80
    /// columns: no line longer, and the overview and discussion laid out by hand (the same at
    /// 80 columns as at 400, so ArgumentParser did not rewrap them into ragged lines). The
    /// usage names every option (it is written by hand where ArgumentParser's would not fit).
    @Test func helpTeachesIn80Columns() throws {
        #expect(Set(Self.subcommands).isSubset(of: Set(try Self.run(["--help"]).stdout.split(separator: " ").map(String.init))))
        for command in [nil] + Self.subcommands.map(Optional.some) {
            let arguments = (command.map { [$0] } ?? []) + ["--help"]
            let help = try Self.run(arguments, environment: ["COLUMNS": "80"])
            let wide = try Self.run(arguments, environment: ["COLUMNS": "400"])
            let name = "unet \(command ?? "") --help"
            #expect(help.status == 0 && wide.status == 0, "\(name): \(help.stderr)")
            let lines = help.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            let long = lines.filter { $0.count > 80 }
            #expect(long.isEmpty, "\(name) has lines over 80 columns: \(long)")
            func head(_ text: String) -> String { text.components(separatedBy: "\nUSAGE:").first ?? "" }
            #expect(head(help.stdout) == head(wide.stdout), "\(name): the discussion is rewrapped at 80 columns")
            guard let command else { continue }
            let text = help.stdout.lowercased()
            #expect(text.contains("reads") && text.contains("writes"), "\(name) does not say what it reads and writes")
            #expect(help.stdout.contains("Example"), "\(name) has no example")
            let examples = help.stdout.components(separatedBy: "Example").dropFirst().joined()
            #expect(examples.split(separator: "\n").contains { $0.contains("unet \(command)") && $0.hasPrefix("  ") },
                    "\(name) has no example line running unet \(command)")
            // Every option listed appears in the usage (unless the usage says <options>).
            let usage = help.stdout.components(separatedBy: "USAGE:").dropFirst().first?.components(separatedBy: "\n\n").first ?? ""
            guard !usage.contains("<options>") else { continue }
            let options = help.stdout.components(separatedBy: "OPTIONS:").dropFirst().joined()
                .split(separator: "\n").compactMap { line -> String? in
                    guard line.hasPrefix("  -") else { return nil }
                    return line.split(separator: " ").first { $0.hasPrefix("--") }.map(String.init)
                }
            for option in options where !["--help", "--version"].contains(option) {
                #expect(usage.contains(option), "\(name): the usage lacks \(option)")
            }
        }
    }
}
