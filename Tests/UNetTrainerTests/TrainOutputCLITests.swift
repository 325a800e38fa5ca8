import Foundation
import Testing
import Checkpoint

/// `unet train`'s output as a user sees it (issue 7, points 1-3): the lines of --quiet and
/// --verbose, the metrics log across resumes, and the --timeline trace.
@Suite("unet train output") struct TrainOutputCLITests {
    typealias Result = CLITests.Result

    /// A prepared data set of 10 images (3 subjects: 7 train, 3 held out) in `dir/data`.
    static func prepare(_ dir: String) throws {
        #expect(try CLITests.run(["synth", "--out", dir + "/raw", "--train", "10", "--test", "1", "--subjects", "3", "--seed", "2"]).status == 0)
        #expect(try CLITests.run(["prepare", "--raw", dir + "/raw", "--out", dir + "/data"]).status == 0)
    }

    /// 7 training images in batches of 3: 3 steps per epoch.
    static func train(_ dir: String, _ checkpoint: String, epochs: Int, _ extra: [String] = []) throws -> Result {
        try CLITests.run(["train", "--data", dir + "/data", "--checkpoint", dir + "/" + checkpoint, "--epochs", "\(epochs)",
                          "--batch-size", "3", "--rows", "16", "--cols", "16", "--filters", "2", "--depth", "2",
                          "--lr", "1e-3", "--seed", "4"] + extra)
    }

    static func rows(_ path: String) throws -> [[String]] {
        String(decoding: try readBytes(path), as: UTF8.self).split(separator: "\n")
            .map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
    }

    /// The CSV beside the checkpoint: a header and one row per epoch; 1 epoch + --resume 1 epoch
    /// gives the rows of a straight 2-epoch run (the same figures; only the timings differ);
    /// a resume from an earlier epoch than the log's last row (rows after the checkpoint, a
    /// partial line) leaves each epoch once.
    @Test func metricsLogAcrossResumes() throws {
        try withTemporaryDirectory { dir in
            try Self.prepare(dir)
            let straight = try Self.train(dir, "straight.h5", epochs: 2)
            #expect(straight.status == 0, "\(straight.stderr)")
            #expect(try Self.train(dir, "resumed.h5", epochs: 1).status == 0)
            #expect(try Self.rows(dir + "/resumed.csv").count == 2)
            let resumed = try Self.train(dir, "resumed.h5", epochs: 2, ["--resume"])
            #expect(resumed.status == 0, "\(resumed.stderr)")
            let a = try Self.rows(dir + "/straight.csv"), b = try Self.rows(dir + "/resumed.csv")
            #expect(a.first == ["epoch", "loss", "dice", "val_loss", "val_dice", "val_kaggle_score", "lr", "images_per_s", "seconds"])
            #expect(a.count == 3 && b.count == 3 && a.allSatisfy { $0.count == 9 } && b.allSatisfy { $0.count == 9 })
            let figures = 0..<7  // epoch, loss, dice, val_loss, val_dice, val_kaggle_score, lr
            #expect(a.map { Array($0[figures]) } == b.map { Array($0[figures]) })
            #expect(a.dropFirst().allSatisfy { Double($0[7])! > 0 && Double($0[8])! > 0 })
            // The checkpoint's history has the same figures as the log.
            let history = try #require(Checkpoint.read(from: dir + "/resumed.last.h5").state?.history)
            #expect(history.map { "\($0.loss)" } == b.dropFirst().map { $0[1] })

            // The last checkpoint holds epoch 2; the log claims an epoch 3 and ends mid-row.
            let handle = try #require(FileHandle(forWritingAtPath: dir + "/resumed.csv"))
            handle.seekToEndOfFile()
            handle.write(Data("3,-0.5,0.5,-0.4,0.4,0.3,0.001,9.0,1.0\n4,-0.5".utf8))
            handle.closeFile()
            #expect(try Self.train(dir, "resumed.h5", epochs: 3, ["--resume"]).status == 0)
            let c = try Self.rows(dir + "/resumed.csv")
            #expect(c.map { $0[0] } == ["epoch", "1", "2", "3"] && c.allSatisfy { $0.count == 9 })
            #expect(Array(c[0..<3]) == b && c[3][1] != "-0.5")

            // A fresh run (no --resume) over the same name starts a fresh log.
            #expect(try Self.train(dir, "resumed.h5", epochs: 1).status == 0)
            #expect(try Self.rows(dir + "/resumed.csv").map { $0[0] } == ["epoch", "1"])
        }
    }

    /// The checkpoint's folders are made when missing (as Keras' ModelCheckpoint makes them);
    /// a path through a file is one line naming it.
    @Test func checkpointFolderIsMade() throws {
        try withTemporaryDirectory { dir in
            try Self.prepare(dir)
            let made = try Self.train(dir, "runs/a/unet.h5", epochs: 1)
            #expect(made.status == 0, "\(made.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir + "/runs/a/unet.h5"))
            #expect(FileManager.default.fileExists(atPath: dir + "/runs/a/unet.csv"))
            #expect(FileManager.default.createFile(atPath: dir + "/file", contents: Data()))
            let refused = try Self.train(dir, "file/unet.h5", epochs: 1)
            #expect(refused.status == 1)
            #expect(refused.stderr.contains("\(dir)/file: exists and is not a folder"), "\(refused.stderr)")
        }
    }

    /// --quiet: nothing on stdout, one summary line on stderr; --verbose: a line per step and
    /// a timing line per epoch; both at once is a one-line usage error.
    @Test func quietAndVerbose() throws {
        try withTemporaryDirectory { dir in
            try Self.prepare(dir)
            let normal = try Self.train(dir, "n.h5", epochs: 2)
            #expect(normal.status == 0 && normal.stdout.split(separator: "\n").count == 2, "\(normal.stdout)")
            #expect(normal.stderr.split(separator: "\n").last?.hasPrefix("train: done: epochs 1-2 of 2 in ") == true, "\(normal.stderr)")
            #expect(normal.stderr.contains("metrics \(dir)/n.csv"))

            let quiet = try Self.train(dir, "q.h5", epochs: 2, ["--quiet"])
            #expect(quiet.status == 0 && quiet.stdout.isEmpty, "\(quiet.stdout)")
            let quietLines = quiet.stderr.split(separator: "\n")
            #expect(quietLines.count == 1 && quietLines[0].hasPrefix("train: done: epochs 1-2 of 2"), "\(quiet.stderr)")
            #expect(try Self.rows(dir + "/q.csv").count == 3)

            let verbose = try Self.train(dir, "v.h5", epochs: 2, ["-v"])
            #expect(verbose.status == 0, "\(verbose.stderr)")
            let lines = verbose.stdout.split(separator: "\n").map(String.init)
            let steps = lines.filter { $0.hasPrefix("  epoch ") && $0.contains(" step ") }
            #expect(steps.count == 6 && steps[0].hasPrefix("  epoch 1 step 1/3  batch_loss "), "\(verbose.stdout)")
            #expect(steps.allSatisfy { $0.contains(" forward ") && $0.contains(" wait ") && $0.contains(" allreduce ") && $0.contains(" adam ") })
            #expect(lines.filter { $0.hasPrefix("epoch ") }.count == 2)
            #expect(lines.filter { $0.hasPrefix("  epoch 2 on rank 0: 3 steps") && $0.contains("conv forward") }.count == 1, "\(verbose.stdout)")

            let both = try Self.train(dir, "b.h5", epochs: 1, ["--quiet", "--verbose"])
            #expect(both.status == 64 && both.stderr == "error: --quiet and --verbose exclude each other (see 'unet train --help')\n",
                    "\(both.stderr)")
        }
    }

    /// --timeline writes a Chrome trace that parses, with every step's spans nested in it; an
    /// unwritable path fails before training.
    @Test func timelineTrace() throws {
        try withTemporaryDirectory { dir in
            try Self.prepare(dir)
            let run = try Self.train(dir, "t.h5", epochs: 2, ["--timeline", dir + "/timeline.json"])
            #expect(run.status == 0, "\(run.stderr)")
            let data = try Data(readBytes(dir + "/timeline.json"))
            let problems = traceProblems(data, ranks: 1, epochs: 1...2, steps: 3)
            #expect(problems.isEmpty, "\(problems)")
            let names = Set(((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["traceEvents"] as? [[String: Any]] ?? [])
                .compactMap { $0["name"] as? String })
            #expect(names.isSuperset(of: ["read_data", "broadcast", "validation", "checkpoint", "timeline_gather"]), "\(names)")

            let bad = try Self.train(dir, "u.h5", epochs: 1, ["--timeline", dir + "/no/such/folder/t.json"])
            #expect(bad.status == 1 && bad.stderr.split(separator: "\n").count == 1 && bad.stderr.contains("no/such/folder/t.json"),
                    "\(bad.stderr)")
            #expect(!listing(dir).contains("u.last.h5"))
        }
    }

    /// The help of train and run names the metrics log and the output options.
    @Test func helpNamesTheLogsAndTheOptions() throws {
        let train = try CLITests.run(["train", "--help"]).stdout
        for text in ["unet.csv", "epoch,loss,dice,val_loss,val_dice,val_kaggle_score,lr,", "-q, --quiet", "-v, --verbose",
                     "--timeline <file>", "chrome://tracing"] {
            #expect(train.contains(text), "unet train --help lacks \(text)")
        }
        let run = try CLITests.run(["run", "--help"]).stdout
        #expect(run.contains("OUT/unet.csv") && run.contains("--timeline <file>") && run.contains("--quiet"))
    }
}
