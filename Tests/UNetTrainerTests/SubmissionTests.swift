import Foundation
import Testing
import DataIO
import Random
import Submission

/// Kaggle's run-length encoding (column-major, 1-indexed), the masks at the original image size,
/// and submission.csv, through the library and through `unet submit`.
@Suite("Submission")
struct SubmissionTests {
    /// A row-major `height x width` mask with the given (row, col) pixels set.
    static func mask(_ height: Int, _ width: Int, _ pixels: [(Int, Int)]) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: height * width)
        for (row, col) in pixels { m[row * width + col] = 1 }
        return m
    }

    static func encode(_ m: [UInt8], _ height: Int, _ width: Int, minPixels: Int = 1) -> String {
        RunLength.encode(mask: m, height: height, width: width, minPixels: minPixels)
    }

    // MARK: Run-length encoding

    @Test func singlePixelAtEachCornerIsColumnMajorFromOne() {
        // 4 high, 3 wide: pixel (row, col) is number col * 4 + row + 1.
        #expect(Self.encode(Self.mask(4, 3, [(0, 0)]), 4, 3) == "1 1")
        #expect(Self.encode(Self.mask(4, 3, [(3, 0)]), 4, 3) == "4 1")
        #expect(Self.encode(Self.mask(4, 3, [(0, 2)]), 4, 3) == "9 1")
        #expect(Self.encode(Self.mask(4, 3, [(3, 2)]), 4, 3) == "12 1")
        #expect(Self.encode(Self.mask(4, 3, [(0, 1)]), 4, 3) == "5 1")
        #expect(Self.encode(Self.mask(4, 3, [(2, 1)]), 4, 3) == "7 1")
        // The Kaggle size: the bottom-left pixel is 420, the top of the second column 421.
        #expect(Self.encode(Self.mask(420, 580, [(419, 0)]), 420, 580) == "420 1")
        #expect(Self.encode(Self.mask(420, 580, [(0, 1)]), 420, 580) == "421 1")
        #expect(Self.encode(Self.mask(420, 580, [(419, 579)]), 420, 580) == "243600 1")
    }

    @Test func columnsAreRunsAndRunsContinueAcrossColumns() {
        let column = Self.mask(4, 3, (0..<4).map { ($0, 1) })
        #expect(Self.encode(column, 4, 3) == "5 4")
        let two = Self.mask(4, 3, (0..<4).flatMap { [($0, 0), ($0, 1)] })
        #expect(Self.encode(two, 4, 3) == "1 8")
        // The bottom of column 0 and the top of column 1 are consecutive pixels 4 and 5.
        #expect(Self.encode(Self.mask(4, 3, [(3, 0), (0, 1)]), 4, 3) == "4 2")
        // A horizontal line is one run per column.
        #expect(Self.encode(Self.mask(4, 3, [(1, 0), (1, 1), (1, 2)]), 4, 3) == "2 1 6 1 10 1")
        // Several runs in one column, in increasing order.
        #expect(Self.encode(Self.mask(5, 2, [(0, 0), (1, 0), (3, 0), (4, 1)]), 5, 2) == "1 2 4 1 10 1")
    }

    @Test func wholeImageAndEmpty() {
        #expect(Self.encode([UInt8](repeating: 1, count: 12), 4, 3) == "1 12")
        #expect(Self.encode([UInt8](repeating: 1, count: 420 * 580), 420, 580, minPixels: 10) == "1 243600")
        #expect(Self.encode([UInt8](repeating: 0, count: 12), 4, 3) == "")
        #expect(Self.encode([UInt8](repeating: 0, count: 12), 4, 3, minPixels: 0) == "")
        #expect(Self.encode([], 0, 0, minPixels: 0) == "")
        // Any non-zero value is set, as the tutorial's `x > 0` on a 0/255 mask.
        #expect(Self.encode(Self.mask(4, 3, [(0, 1)]).map { $0 * 255 }, 4, 3) == "5 1")
    }

    @Test func runsEndingAtTheLastPixel() {
        #expect(Self.encode(Self.mask(4, 3, [(2, 2), (3, 2)]), 4, 3) == "11 2")
        #expect(Self.encode(Self.mask(4, 3, (0..<4).map { ($0, 2) }), 4, 3) == "9 4")
        #expect(Self.encode(Self.mask(4, 3, [(0, 0), (3, 2)]), 4, 3) == "1 1 12 1")
        // From the middle of column 1 to the end.
        #expect(Self.encode(Self.mask(4, 3, [(2, 1), (3, 1)] + (0..<4).map { ($0, 2) }), 4, 3) == "7 6")
    }

    @Test func fewerThanMinPixelsIsEmpty() {
        let nine = Self.mask(420, 580, (0..<9).map { ($0 * 40, $0 * 60) })
        let ten = Self.mask(420, 580, (0..<10).map { ($0 * 40, $0 * 60) })
        #expect(Self.encode(nine, 420, 580, minPixels: 10) == "")
        #expect(Self.encode(ten, 420, 580, minPixels: 10) != "")
        #expect(Self.encode(ten, 420, 580, minPixels: 10).split(separator: " ").count == 20)
        #expect(Self.encode(nine, 420, 580, minPixels: 9) != "")
        #expect(Self.encode(ten, 420, 580, minPixels: 11) == "")
        #expect(Self.encode(Self.mask(4, 3, [(1, 1)]), 4, 3, minPixels: 0) == "6 1")
    }

    /// Random masks of random sizes and densities (scattered pixels and blobs) survive the
    /// round trip, and decoding gives exactly as many set pixels as the run lengths add up to.
    @Test func randomRoundTrip() throws {
        var g = SeededGenerator(seed: 20160519)
        for trial in 0..<300 {
            let height = Int.random(in: 1...40, using: &g), width = Int.random(in: 1...40, using: &g)
            var m = [UInt8](repeating: 0, count: height * width)
            switch trial % 3 {
            case 0:  // scattered pixels at a random density
                let p = Double.random(in: 0...1, using: &g)
                for i in m.indices where Double.random(in: 0..<1, using: &g) < p { m[i] = 1 }
            case 1:  // a few rectangles
                for _ in 0..<Int.random(in: 0...4, using: &g) {
                    let r0 = Int.random(in: 0..<height, using: &g), c0 = Int.random(in: 0..<width, using: &g)
                    let r1 = Int.random(in: r0..<height, using: &g), c1 = Int.random(in: c0..<width, using: &g)
                    for r in r0...r1 { for c in c0...c1 { m[r * width + c] = 1 } }
                }
            default:  // mostly set, with holes
                for i in m.indices { m[i] = Int.random(in: 0..<10, using: &g) == 0 ? 0 : 1 }
            }
            let rle = RunLength.encode(mask: m, height: height, width: width, minPixels: 0)
            let decoded = try RunLength.decode(rle, height: height, width: width)
            #expect(decoded == m, "trial \(trial): \(height)x\(width) \(rle)")
            let lengths = rle.split(separator: " ").enumerated().filter { $0.offset % 2 == 1 }.map { Int($0.element)! }
            #expect(lengths.reduce(0, +) == m.reduce(0) { $0 + Int($1) })
            #expect(!rle.hasPrefix(" ") && !rle.hasSuffix(" ") && !rle.contains("  "))
        }
    }

    @Test func decodeAcceptsWhatKaggleTakes() throws {
        #expect(try RunLength.decode("", height: 4, width: 3) == [UInt8](repeating: 0, count: 12))
        #expect(try RunLength.decode("5 1", height: 4, width: 3) == Self.mask(4, 3, [(0, 1)]))
        #expect(try RunLength.decode("4 2", height: 4, width: 3) == Self.mask(4, 3, [(3, 0), (0, 1)]))
        #expect(try RunLength.decode("1 12", height: 4, width: 3) == [UInt8](repeating: 1, count: 12))
        // Touching runs are not overlapping ones.
        #expect(try RunLength.decode("1 2 3 2", height: 4, width: 3) == Self.mask(4, 3, [(0, 0), (1, 0), (2, 0), (3, 0)]))
    }

    @Test(arguments: [
        ("1", "odd number of values (1)"),
        ("1 2 3", "odd number of values (3)"),
        ("1 a", "value 2 \"a\" is not a positive integer"),
        ("-1 2", "value 1 \"-1\" is not a positive integer"),
        ("+1 2", "value 1 \"+1\" is not a positive integer"),
        ("1.0 2", "value 1 \"1.0\" is not a positive integer"),
        ("0 3", "value 1 \"0\" is zero"),
        ("3 0", "value 2 \"0\" is zero"),
        ("99999999999999999999 1", "value 1 \"99999999999999999999\" is too large"),
        ("12 2", "run 1 (start 12, length 2) goes past the last pixel 12 of a 4x3 image"),
        ("13 1", "run 1 (start 13, length 1) goes past the last pixel 12"),
        ("1 5 3 2", "run 2 (start 3, length 2) does not start after run 1 ends at pixel 5"),
        ("10 2 1 2", "run 2 (start 1, length 2) does not start after run 1 ends at pixel 11"),
        ("5 1 5 1", "run 2 (start 5, length 1) does not start after run 1 ends at pixel 5"),
    ])
    func decodeRejects(_ input: String, _ reason: String) {
        do {
            let m = try RunLength.decode(input, height: 4, width: 3)
            Issue.record("\"\(input)\" decoded to \(m)")
        } catch let error as RunLengthError {
            #expect(error.message.hasPrefix(reason), "\"\(input)\": \(error.message)")
            #expect(!error.message.contains("\n"))
        } catch {
            Issue.record("\"\(input)\": unexpected \(error)")
        }
    }

    // MARK: Masks at the original size

    static func binarize(_ p: [Float], threshold: Float = 0.5) -> [UInt8] {
        SubmissionMask.binarize(probabilities: p, rows: 64, cols: 80, threshold: threshold, height: 420, width: 580)
    }

    @Test func binarizeConstantMaps() {
        #expect(Self.binarize([Float](repeating: 1, count: 64 * 80)) == [UInt8](repeating: 1, count: 420 * 580))
        #expect(Self.binarize([Float](repeating: 0.9, count: 64 * 80)) == [UInt8](repeating: 1, count: 420 * 580))
        #expect(Self.binarize([Float](repeating: 0, count: 64 * 80)) == [UInt8](repeating: 0, count: 420 * 580))
        // p > threshold, strictly; NaN is not a nerve.
        #expect(Self.binarize([Float](repeating: 0.5, count: 64 * 80)) == [UInt8](repeating: 0, count: 420 * 580))
        #expect(Self.binarize([Float](repeating: 0.5, count: 64 * 80), threshold: 0.4) == [UInt8](repeating: 1, count: 420 * 580))
        #expect(Self.binarize([Float](repeating: .nan, count: 64 * 80)) == [UInt8](repeating: 0, count: 420 * 580))
    }

    /// A block of rows 16..<32 and columns 20..<40 of 64x80 lands on rows 105..<210 and columns
    /// 145..<290 of 420x580 (the scaled outline), with the corners a little rounded.
    @Test func binarizeBlockScales() {
        var p = [Float](repeating: 0.1, count: 64 * 80)
        for r in 16..<32 { for c in 20..<40 { p[r * 80 + c] = 0.8 } }
        let m = Self.binarize(p)
        var outside = 0, missingInside = 0, missingDeepInside = 0
        for r in 0..<420 {
            for c in 0..<580 {
                let inside = (105..<210).contains(r) && (145..<290).contains(c)
                let deep = (109..<206).contains(r) && (149..<286).contains(c)
                if m[r * 580 + c] == 1 && !inside { outside += 1 }
                if m[r * 580 + c] == 0 && inside { missingInside += 1 }
                if m[r * 580 + c] == 0 && deep { missingDeepInside += 1 }
            }
        }
        #expect(outside == 0)
        #expect(missingDeepInside == 0)
        #expect(missingInside > 0 && missingInside <= 4 * 16, "corners: \(missingInside) pixels")
        // The edges away from the corners are exact: the middle row and column of the block.
        #expect((0..<580).filter { m[157 * 580 + $0] == 1 } == Array(145..<290))
        #expect((0..<420).filter { m[$0 * 580 + 217] == 1 } == Array(105..<210))
    }

    @Test func binarizeAtTheSameSizeIsAThreshold() {
        var g = SeededGenerator(seed: 3)
        let p = (0..<(12 * 9)).map { _ in Float(g.nextDouble()) }
        let m = SubmissionMask.binarize(probabilities: p, rows: 12, cols: 9, threshold: 0.3, height: 12, width: 9)
        #expect(m == p.map { $0 > 0.3 ? 1 : 0 })
    }

    // MARK: submission.csv

    /// `count` 8x10 probability maps, each with a block of its own.
    static func probabilityMaps(_ count: Int) -> [Float] {
        var p = [Float](repeating: 0.05, count: count * 8 * 10)
        for i in 0..<count where i % 3 != 2 {  // every third image predicts nothing
            for r in 1..<(3 + i % 4) { for c in (i % 5)..<(4 + i % 6) { p[i * 80 + r * 10 + c] = 0.95 } }
        }
        return p
    }

    static func parse(_ csv: String) -> (header: Substring, rows: [(id: Int32, rle: String)]) {
        var lines = csv.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.last == "", "ends with a newline")
        lines.removeLast()
        let rows = lines.dropFirst().map { line -> (Int32, String) in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            #expect(fields.count == 2, "\(line)")
            return (Int32(fields[0]) ?? -1, String(fields[1]))
        }
        return (lines.first ?? "", rows)
    }

    @Test func writerSortsByIdAndEveryRowDecodesToItsMask() throws {
        try withTemporaryDirectory { dir in
            let ids: [Int32] = [7, 2, 10, 1, 5, 3]
            let p = Self.probabilityMaps(ids.count)
            let path = dir + "/submission.csv"
            let summary = try Submission.write(ids: ids, masks: p, rows: 8, cols: 10, height: 42, width: 58,
                                               threshold: 0.5, minPixels: 10, to: path)
            #expect(summary == Submission.Summary(images: 6, nonEmpty: 4))
            let csv = try String(contentsOfFile: path, encoding: .utf8)
            #expect(csv.hasPrefix("img,pixels\n"))
            #expect(!csv.contains("\r"))
            let (header, rows) = Self.parse(csv)
            #expect(header == "img,pixels")
            #expect(rows.map(\.id) == [1, 2, 3, 5, 7, 10])
            for (id, rle) in rows {
                let i = ids.firstIndex(of: id)!
                let expected = SubmissionMask.binarize(probabilities: Array(p[(i * 80)..<((i + 1) * 80)]), rows: 8, cols: 10,
                                                       threshold: 0.5, height: 42, width: 58)
                let decoded = try RunLength.decode(rle, height: 42, width: 58)
                if i % 3 == 2 {
                    #expect(rle.isEmpty, "image \(id) predicts nothing")
                } else {
                    #expect(!rle.isEmpty && decoded == expected, "image \(id)")
                }
            }
            #expect(listing(dir) == ["submission.csv"])  // no temporary file left
        }
    }

    @Test func writerRefusesDuplicateIdsAndWrongCounts() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/submission.csv"
            #expect(throws: DataError(path, "image id 2 appears twice (at positions 1 and 3 of the ids)")) {
                try Submission.write(ids: [1, 2, 3, 2], masks: Self.probabilityMaps(4), rows: 8, cols: 10,
                                     height: 42, width: 58, threshold: 0.5, minPixels: 10, to: path)
            }
            #expect(throws: DataError.self) {
                try Submission.write(ids: [1, 2, 3], masks: Self.probabilityMaps(4), rows: 8, cols: 10,
                                     height: 42, width: 58, threshold: 0.5, minPixels: 10, to: path)
            }
            #expect(throws: DataError.self) {
                try Submission.write(ids: [1], masks: Self.probabilityMaps(1), rows: 8, cols: 10,
                                     height: 42, width: 58, threshold: 0.5, minPixels: -1, to: path)
            }
            #expect(listing(dir).isEmpty)
            #expect(Submission.duplicateId(in: [4, 5, 6]) == nil)
            #expect(Submission.duplicateId(in: [4, 5, 4, 5]).map { [$0.id, Int32($0.first), Int32($0.second)] } == [4, 0, 2])
        }
    }

    @Test func writerIntoAMissingFolderFailsNamingTheFile() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/missing/submission.csv"
            do {
                try Submission.write(ids: [1], masks: Self.probabilityMaps(1), rows: 8, cols: 10,
                                     height: 42, width: 58, threshold: 0.5, minPixels: 10, to: path)
                Issue.record("wrote into a missing folder")
            } catch let error as DataError {
                #expect(error.path == path && error.problem.contains("cannot create"), "\(error)")
            }
            #expect(listing(dir).isEmpty)
        }
    }

    // MARK: unet submit

    /// DIR/data with imgs_test.npy (header only matters) and imgs_id_test.npy for `ids`, images
    /// of 42x58.
    static func writeTestData(_ dir: String, ids: [Int32]) throws -> String {
        let data = dir + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try NPY.save(NDArray(shape: [ids.count, 42, 58], scalars: [UInt8](repeating: 9, count: ids.count * 42 * 58)),
                     to: data + "/imgs_test.npy")
        try NPY.save(NDArray(shape: [ids.count], scalars: ids), to: data + "/imgs_id_test.npy")
        return data
    }

    @Test func submitWritesTheCSV() throws {
        try withTemporaryDirectory { dir in
            let ids: [Int32] = [4, 1, 3, 2, 6]
            let data = try Self.writeTestData(dir, ids: ids)
            let p = Self.probabilityMaps(ids.count)
            // As `unet predict` writes them, and as Keras does (a channel axis).
            try NPY.save(NDArray(shape: [5, 8, 10], scalars: p), to: dir + "/masks.npy")
            try NPY.save(NDArray(shape: [5, 1, 8, 10], scalars: p), to: dir + "/masks_nchw.npy")
            try NPY.save(NDArray(shape: [5, 8, 10, 1], scalars: p), to: dir + "/masks_nhwc.npy")
            try Submission.write(ids: ids, masks: p, rows: 8, cols: 10, height: 42, width: 58,
                                 threshold: 0.5, minPixels: 10, to: dir + "/expected.csv")
            let expected = try String(contentsOfFile: dir + "/expected.csv", encoding: .utf8)

            for masks in ["masks.npy", "masks_nchw.npy", "masks_nhwc.npy"] {
                let out = dir + "/" + masks + ".csv"
                let r = try CLITests.run(["submit", "--data", data, "--masks", dir + "/" + masks, "--out", out])
                #expect(r.status == 0, "\(r.stderr)")
                #expect(r.stdout.isEmpty)
                #expect(r.stderr == "submit: 5 images (42x58), 4 with a mask of at least 10 pixels, 1 empty, to \(out)\n")
                let csv = try String(contentsOfFile: out, encoding: .utf8)
                #expect(csv == expected)
                #expect(Self.parse(csv).rows.map(\.id) == [1, 2, 3, 4, 6])
            }

            // --threshold and --min-pixels reach the writer.
            let strict = try CLITests.run(["submit", "--data", data, "--masks", dir + "/masks.npy", "--out", dir + "/s.csv",
                                           "--threshold", "0.99", "--min-pixels", "0"])
            #expect(strict.status == 0 && strict.stderr.contains("0 with a mask of at least 0 pixels, 5 empty"), "\(strict.stderr)")
            let rows = Self.parse(try String(contentsOfFile: dir + "/s.csv", encoding: .utf8)).rows
            #expect(rows.count == 5 && rows.allSatisfy { $0.rle.isEmpty })
        }
    }

    @Test func submitRefusesInOneLineAndWritesNothing() throws {
        try withTemporaryDirectory { dir in
            let data = try Self.writeTestData(dir, ids: [1, 2, 3])
            try NPY.save(NDArray(shape: [4, 8, 10], scalars: Self.probabilityMaps(4)), to: dir + "/four.npy")
            try NPY.save(NDArray(shape: [3, 8, 10], scalars: Self.probabilityMaps(3)), to: dir + "/three.npy")
            try NPY.save(NDArray(shape: [3, 2, 8, 10], scalars: Self.probabilityMaps(6)), to: dir + "/twochannels.npy")
            try NPY.save(NDArray(shape: [3, 8, 10], scalars: [UInt8](repeating: 1, count: 240)), to: dir + "/bytes.npy")
            let out = dir + "/submission.csv"
            func submit(_ masks: String, _ extra: [String] = []) throws -> CLITests.Result {
                try CLITests.run(["submit", "--data", data, "--masks", dir + "/" + masks, "--out", out] + extra)
            }

            let mismatch = try submit("four.npy")
            #expect(mismatch.status == 1)
            #expect(mismatch.stderr == "error: \(dir)/four.npy: shape (4, 8, 10) holds 4 masks, but \(data)/imgs_test.npy"
                + " has shape (3, 42, 58): 3 test images\n")

            for (masks, extra, needle) in [
                ("twochannels.npy", [String](), "twochannels.npy: expected masks of shape"),
                ("bytes.npy", [], "bytes.npy: dtype |u1 does not match"),
                ("missing.npy", [], "missing.npy: cannot open"),
                ("three.npy", ["--threshold", "1"], "--threshold must be between 0 and 1"),
                ("three.npy", ["--threshold", "0"], "--threshold must be between 0 and 1"),
                ("three.npy", ["--min-pixels=-1"], "--min-pixels must be at least 0"),
            ] {
                let r = try submit(masks, extra)
                #expect(r.status == 1, "\(masks) \(extra)")
                #expect(r.stderr.hasPrefix("error: ") && r.stderr.contains(needle), "\(r.stderr)")
                #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            }

            // The ids must match the images and be distinct.
            try NPY.save(NDArray(shape: [2], scalars: [Int32(1), 2]), to: data + "/imgs_id_test.npy")
            let ids = try submit("three.npy")
            #expect(ids.status == 1 && ids.stderr == "error: \(data)/imgs_id_test.npy: shape (2,) does not match"
                + " \(data)/imgs_test.npy's (3, 42, 58): expected (3,)\n", "\(ids.stderr)")
            try NPY.save(NDArray(shape: [3], scalars: [Int32(1), 2, 1]), to: data + "/imgs_id_test.npy")
            let twice = try submit("three.npy")
            #expect(twice.status == 1 && twice.stderr == "error: \(data)/imgs_id_test.npy: id 1 appears twice (at positions 0 and 2)\n",
                    "\(twice.stderr)")

            #expect(!listing(dir).contains("submission.csv"))
            #expect(listing(dir).allSatisfy { !$0.contains(".tmp-") })
        }
    }

    @Test func submitHelpTeaches() throws {
        let help = try CLITests.run(["submit", "--help"])
        #expect(help.status == 0 && help.stdout.contains("Example") && help.stdout.contains("imgs_id_test.npy"))
        #expect(try CLITests.run(["--help"]).stdout.contains("submit"))
    }
}
