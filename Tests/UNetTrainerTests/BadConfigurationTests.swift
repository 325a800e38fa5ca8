import Foundation
import Testing
import DataIO

/// Bad configurations (issue 6, point 7) get a clear one-line error before any work: nothing is
/// read past the check, nothing is written, the exit status is non-zero. (More ranks than images in
/// a batch needs mpirun: Launch/test-distributed.sh; a checkpoint of another configuration:
/// CheckpointTests.configurationMismatchListsTheFields and CLITests.resumeIsExact.)
@Suite("Bad configurations")
struct BadConfigurationTests {
    /// A small data folder as `unet prepare` writes it (4 training images of 16 x 16, 2 test images).
    static func writeData(_ folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let pixels = (0..<(4 * 16 * 16)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        try NPY.save(NDArray(shape: [4, 16, 16], scalars: pixels), to: folder + "/imgs_train.npy")
        try NPY.save(NDArray(shape: [4, 16, 16], scalars: pixels.map { $0 > 128 ? UInt8(255) : 0 }), to: folder + "/imgs_mask_train.npy")
        try NPY.save(NDArray(shape: [4], scalars: [Int32(1), 1, 2, 2]), to: folder + "/imgs_subject_train.npy")
        try NPY.save(NDArray(shape: [2, 16, 16], scalars: Array(pixels.prefix(512))), to: folder + "/imgs_test.npy")
        try NPY.save(NDArray(shape: [2], scalars: [Int32(1), 2]), to: folder + "/imgs_id_test.npy")
    }

    /// Runs `unet` and checks the refusal: non-zero status, one line `error: ...` holding every
    /// needle, and no file added to or removed from `dir`.
    static func expectRefusal(_ arguments: [String], in dir: String, _ needles: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let before = try recursiveListing(dir)
        let result = try CLITests.run(arguments)
        #expect(result.status != 0, "\(arguments)", sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty && lines[0].hasPrefix("error: "),
                "\(arguments): \(result.stderr.debugDescription)", sourceLocation: sourceLocation)
        for needle in needles {
            #expect(result.stderr.contains(needle), "\(arguments): \(result.stderr) lacks \(needle)", sourceLocation: sourceLocation)
        }
        #expect(result.stdout.isEmpty, "\(arguments): \(result.stdout)", sourceLocation: sourceLocation)
        #expect(try recursiveListing(dir) == before, "\(arguments) changed the files", sourceLocation: sourceLocation)
    }

    static func recursiveListing(_ dir: String) throws -> [String] {
        (FileManager.default.enumerator(atPath: dir)?.allObjects as? [String] ?? []).sorted()
    }

    @Test func badOptionsAreRefusedInOneLineBeforeAnyWork() throws {
        try withTemporaryDirectory { dir in
            let data = dir + "/data"
            try Self.writeData(data)
            let train = ["train", "--data", data, "--checkpoint", dir + "/unet.h5", "--epochs", "1", "--filters", "2"]
            // Image sizes not divisible by 2^depth.
            try Self.expectRefusal(train + ["--rows", "60", "--cols", "16", "--depth", "4"], in: dir,
                                   ["rows 60 and cols 16 must be positive multiples of 2^depth = 16", "unet train --help"])
            try Self.expectRefusal(train + ["--rows", "16", "--cols", "20", "--depth", "3"], in: dir,
                                   ["rows 16 and cols 20 must be positive multiples of 2^depth = 8"])
            try Self.expectRefusal(["run", "--out", dir + "/out", "--rows", "60", "--depth", "4"], in: dir,
                                   ["rows 60 and cols 80 must be positive multiples of 2^depth = 16", "unet run --help"])
            // A batch size of 0.
            try Self.expectRefusal(train + ["--rows", "16", "--cols", "16", "--depth", "2", "--batch-size", "0"], in: dir,
                                   ["--batch-size must be at least 1"])
            try Self.expectRefusal(["evaluate", "--data", data, "--checkpoint", dir + "/unet.h5", "--batch-size", "0"], in: dir,
                                   ["--batch-size must be at least 1", "unet evaluate --help"])
            try Self.expectRefusal(["predict", "--data", data, "--checkpoint", dir + "/unet.h5", "--out", dir + "/p.npy",
                                    "--batch-size", "0"], in: dir, ["--batch-size must be at least 1"])
        }
    }

    @Test func aDataFolderMissingAFileIsNamedBeforeAnyWork() throws {
        try withTemporaryDirectory { dir in
            let data = dir + "/data"
            try Self.writeData(data)
            let model = ["--rows", "16", "--cols", "16", "--filters", "2", "--depth", "2", "--epochs", "1"]
            let train = ["train", "--data", data, "--checkpoint", dir + "/unet.h5"] + model
            for name in ["imgs_mask_train.npy", "imgs_train.npy"] {
                try FileManager.default.moveItem(atPath: data + "/" + name, toPath: dir + "/" + name)
                try Self.expectRefusal(train, in: dir, ["error: \(data)/\(name): missing from the data folder"])
                // --resume reads no checkpoint before the check either.
                try Self.expectRefusal(train + ["--resume"], in: dir, ["error: \(data)/\(name): missing from the data folder"])
                try Self.expectRefusal(["evaluate", "--data", data, "--checkpoint", dir + "/unet.h5"], in: dir,
                                       ["error: \(data)/\(name): missing from the data folder"])
                try FileManager.default.moveItem(atPath: dir + "/" + name, toPath: data + "/" + name)
            }
            for name in ["imgs_id_test.npy", "imgs_test.npy"] {
                try FileManager.default.moveItem(atPath: data + "/" + name, toPath: dir + "/" + name)
                try Self.expectRefusal(["predict", "--data", data, "--checkpoint", dir + "/unet.h5", "--out", dir + "/p.npy"],
                                       in: dir, ["error: \(data)/\(name): missing from the data folder"])
                try FileManager.default.moveItem(atPath: dir + "/" + name, toPath: data + "/" + name)
            }
            try Self.expectRefusal(["train", "--data", dir + "/nowhere", "--checkpoint", dir + "/unet.h5"] + model, in: dir,
                                   ["error: \(dir)/nowhere: missing data folder"])
            try Self.expectRefusal(["train", "--data", data + "/imgs_train.npy", "--checkpoint", dir + "/unet.h5"] + model,
                                   in: dir, ["imgs_train.npy: not a folder"])

            // The same folder, whole, trains (the checks refuse only what is wrong).
            let ok = try CLITests.run(train + ["--batch-size", "2"])
            #expect(ok.status == 0, "\(ok.stderr)")
            #expect(listing(dir).contains("unet.h5"))
        }
    }
}
