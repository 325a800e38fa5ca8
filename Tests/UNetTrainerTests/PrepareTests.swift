import Foundation
import Testing
@testable import DataIO

/// `unet prepare`'s logic on small raw folders written with our TIFF writer.
@Suite("Prepare: TIFF folders to .npy")
struct PrepareTests {
    static let (w, h) = (12, 8)

    /// A distinct image per (subject, n): every pixel encodes where it came from.
    static func pixels(_ a: Int, _ b: Int, mask: Bool = false, width: Int = w, height: Int = h) -> [UInt8] {
        (0..<(width * height)).map { i in
            mask ? (i % (a + b + 2) == 0 ? 255 : 0) : UInt8(truncatingIfNeeded: a * 31 + b * 7 + i)
        }
    }

    /// Writes raw/train and raw/test; `train` lists (subject, n), `test` lists ids.
    static func makeRaw(_ dir: String, train: [(Int, Int)], test: [Int]) throws -> String {
        let raw = dir + "/raw"
        try FileManager.default.createDirectory(atPath: raw + "/train", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: raw + "/test", withIntermediateDirectories: true)
        for (s, n) in train {
            try TIFF.writeGray8(pixels(s, n), width: w, height: h, to: "\(raw)/train/\(s)_\(n).tif")
            try TIFF.writeGray8(pixels(s, n, mask: true), width: w, height: h, to: "\(raw)/train/\(s)_\(n)_mask.tif")
        }
        for id in test {
            try TIFF.writeGray8(pixels(1000, id), width: w, height: h, to: "\(raw)/test/\(id).tif")
        }
        return raw
    }

    @Test func writesFiveArraysInNumericOrder() throws {
        try withTemporaryDirectory { dir in
            // Written out of order, with numbers whose text order differs from numeric order.
            let train = [(10, 2), (2, 10), (2, 9), (10, 1), (3, 1)]
            let raw = try Self.makeRaw(dir, train: train, test: [11, 2, 1])
            try writeBytes(Array("junk".utf8), raw + "/train/.DS_Store")
            try writeBytes(Array("notes".utf8), raw + "/test/README.txt")
            let out = dir + "/data"
            let report = try DatasetPreparer(raw: raw, out: out, threads: 2).run()
            #expect(report.trainCount == 5 && report.testCount == 3)
            #expect(report.notes.count == 2)
            #expect(report.notes.allSatisfy { $0.contains("skipped") })

            let order = [(2, 9), (2, 10), (3, 1), (10, 1), (10, 2)]
            let images = try NPY.load(out + "/imgs_train.npy", as: UInt8.self)
            #expect(images.shape == [5, Self.h, Self.w])
            #expect(images.scalars == order.flatMap { Self.pixels($0.0, $0.1) })
            let masks = try NPY.load(out + "/imgs_mask_train.npy", as: UInt8.self)
            #expect(masks.shape == [5, Self.h, Self.w])
            #expect(masks.scalars == order.flatMap { Self.pixels($0.0, $0.1, mask: true) })
            let subjects = try NPY.load(out + "/imgs_subject_train.npy", as: Int32.self)
            #expect(subjects.shape == [5] && subjects.scalars == [2, 2, 3, 10, 10])
            let test = try NPY.load(out + "/imgs_test.npy", as: UInt8.self)
            #expect(test.shape == [3, Self.h, Self.w])
            #expect(test.scalars == [1, 2, 11].flatMap { Self.pixels(1000, $0) })
            let ids = try NPY.load(out + "/imgs_id_test.npy", as: Int32.self)
            #expect(ids.shape == [3] && ids.scalars == [1, 2, 11])
            #expect(listing(out) == DatasetPreparer.outputNames.sorted())
        }
    }

    @Test func oneThreadAndManyThreadsAgree() throws {
        try withTemporaryDirectory { dir in
            let raw = try Self.makeRaw(dir, train: (1...7).map { (1 + $0 % 3, $0) }, test: Array(1...5))
            _ = try DatasetPreparer(raw: raw, out: dir + "/a", threads: 1).run()
            _ = try DatasetPreparer(raw: raw, out: dir + "/b", threads: 3).run()
            for name in DatasetPreparer.outputNames {
                #expect(try readBytes(dir + "/a/" + name) == readBytes(dir + "/b/" + name))
            }
        }
    }

    @Test func fileNameParsing() {
        #expect(DatasetPreparer.parseTrainName("12_3.tif")! == (12, 3, false))
        #expect(DatasetPreparer.parseTrainName("12_3_mask.tif")! == (12, 3, true))
        for bad in ["12_3.tiff", "12-3.tif", "a_3.tif", "12_3_4.tif", "12__3.tif", "_3.tif", "12_3_Mask.tif", "12_+3.tif", "12_3.tif.bak"] {
            #expect(DatasetPreparer.parseTrainName(bad) == nil, "\(bad)")
        }
        #expect(DatasetPreparer.parseTestName("5508.tif") == 5508)
        #expect(DatasetPreparer.parseTestName("1_1.tif") == nil)
        #expect(DatasetPreparer.parseTestName("-1.tif") == nil)
    }

    /// Runs prepare on a raw folder damaged by `damage`; expects an error whose path ends with
    /// `file` and whose problem contains `problem`, and an output folder without any .npy file.
    func expectFailure(file: String, problem: String,
                       train: [(Int, Int)] = [(1, 1), (1, 2), (2, 1)], test: [Int] = [1, 2],
                       _ damage: (String) throws -> Void) throws {
        try withTemporaryDirectory { dir in
            let raw = try Self.makeRaw(dir, train: train, test: test)
            try damage(raw)
            let out = dir + "/data"
            let error = #expect(throws: DataError.self) { try DatasetPreparer(raw: raw, out: out).run() }
            #expect(error?.path.hasSuffix(file) == true, "error path \(error?.path ?? "none")")
            #expect(error?.problem.contains(problem) == true, "error problem \(error?.problem ?? "none")")
            #expect(!(error?.description.contains("\n") ?? true))
            #expect(listing(out).filter { $0.contains(".npy") }.isEmpty, "left behind: \(listing(out))")
        }
    }

    @Test func imageWithoutMask() throws {
        try expectFailure(file: "train/1_2.tif", problem: "has no mask") { raw in
            try FileManager.default.removeItem(atPath: raw + "/train/1_2_mask.tif")
        }
    }

    @Test func maskWithoutImage() throws {
        try expectFailure(file: "train/2_1_mask.tif", problem: "has no training image") { raw in
            try FileManager.default.removeItem(atPath: raw + "/train/2_1.tif")
        }
    }

    @Test func corruptTIFF() throws {
        try expectFailure(file: "train/1_2.tif", problem: "TIFF") { raw in
            try writeBytes(Array(repeating: 0x42, count: 300), raw + "/train/1_2.tif")
        }
    }

    @Test func truncatedTIFF() throws {
        try expectFailure(file: "test/2.tif", problem: "TIFF") { raw in
            let bytes = try readBytes(raw + "/test/2.tif")
            try writeBytes(Array(bytes.prefix(bytes.count / 2)), raw + "/test/2.tif")
        }
    }

    /// Masks as other tools write them: 0/1 (and RGB, whose luminance is one value) become
    /// 0/255 with a note; 0/255 is kept without one; with a label, that label's pixels are the
    /// nerve. The images are untouched.
    @Test func masksOfOtherConventionsBecome0And255() throws {
        try withTemporaryDirectory { dir in
            let raw = try Self.makeRaw(dir, train: [(1, 1), (1, 2), (2, 1)], test: [1])
            let ones: [[UInt8]] = [(1, 1), (1, 2), (2, 1)].map { Self.pixels($0.0, $0.1, mask: true).map { $0 / 255 } }
            for (k, (s, n)) in [(1, 1), (1, 2), (2, 1)].enumerated() {
                try TIFF.writeGray8(ones[k], width: Self.w, height: Self.h, to: "\(raw)/train/\(s)_\(n)_mask.tif")
            }
            let report = try DatasetPreparer(raw: raw, out: dir + "/ones").run()
            #expect(report.notes == ["masks hold 0 and 1: taken as 0 and 255 (the nerve 1)"])
            let masks = try NPY.load(dir + "/ones/imgs_mask_train.npy", as: UInt8.self).scalars
            #expect(masks == ones.flatMap { $0.map { $0 * 255 } })

            // Labels 0, 1 and 2: refused without --label, naming the file and its values.
            let labels = (0..<(Self.w * Self.h)).map { UInt8($0 % 3) }
            try TIFF.writeGray8(labels, width: Self.w, height: Self.h, to: "\(raw)/train/1_2_mask.tif")
            let error = #expect(throws: DataError.self) { try DatasetPreparer(raw: raw, out: dir + "/refused").run() }
            #expect(error?.path.hasSuffix("train/1_2_mask.tif") == true && error?.problem.contains("values 0, 1, 2") == true
                    && error?.problem.contains("--label") == true, "\(error.map { "\($0)" } ?? "no error")")
            #expect(listing(dir + "/refused").filter { $0.contains(".npy") }.isEmpty)
            var preparer = DatasetPreparer(raw: raw, out: dir + "/label")
            preparer.label = 2
            _ = try preparer.run()
            let labelled = try NPY.load(dir + "/label/imgs_mask_train.npy", as: UInt8.self).scalars
            let plane = Self.w * Self.h
            #expect(Array(labelled[plane..<(2 * plane)]) == labels.map { $0 == 2 ? 255 : 0 })
            #expect(Array(labelled[0..<plane]) == ones[0].map { _ in 0 })  // masks of 0/1 hold no label 2
        }
    }

    @Test func imagesOfDifferentSizes() throws {
        try expectFailure(file: "train/2_1.tif", problem: "image is 10x8") { raw in
            try TIFF.writeGray8(Self.pixels(2, 1, width: 10), width: 10, height: 8, to: raw + "/train/2_1.tif")
        }
    }

    @Test func maskOfAnotherSize() throws {
        try expectFailure(file: "train/1_1_mask.tif", problem: "but the training images are 12x8") { raw in
            try TIFF.writeGray8(Self.pixels(1, 1, mask: true, width: 10), width: 10, height: 8, to: raw + "/train/1_1_mask.tif")
        }
    }

    @Test func nameThatDoesNotParse() throws {
        try expectFailure(file: "train/1_x.tif", problem: "does not parse") { raw in
            try writeBytes([0], raw + "/train/1_x.tif")
        }
        try expectFailure(file: "test/a.tif", problem: "does not parse") { raw in
            try writeBytes([0], raw + "/test/a.tif")
        }
    }

    @Test func duplicateIdAfterLeadingZeros() throws {
        try expectFailure(file: "test/2.tif", problem: "duplicate test id 2") { raw in
            try FileManager.default.copyItem(atPath: raw + "/test/2.tif", toPath: raw + "/test/02.tif")
        }
    }

    @Test func missingOrEmptyFolders() throws {
        try expectFailure(file: "raw/test", problem: "missing folder") { raw in
            try FileManager.default.removeItem(atPath: raw + "/test")
        }
        try expectFailure(file: "raw/train", problem: "no training images", train: []) { _ in }
        try expectFailure(file: "raw/test", problem: "no test images", test: []) { raw in
            try writeBytes([0], raw + "/test/.DS_Store")
        }
    }

    @Test func outputFolderThatCannotBeWritten() throws {
        try withTemporaryDirectory { dir in
            let raw = try Self.makeRaw(dir, train: [(1, 1)], test: [1])
            // A path below a regular file can never be created, even as root.
            try writeBytes([0], dir + "/file")
            let error = #expect(throws: DataError.self) { try DatasetPreparer(raw: raw, out: dir + "/file/data").run() }
            #expect(error?.path == dir + "/file/data")
            #expect(error?.problem.contains("cannot create output folder") == true)
            let notFolder = #expect(throws: DataError.self) { try DatasetPreparer(raw: raw, out: dir + "/file").run() }
            #expect(notFolder?.problem.contains("not a folder") == true)
        }
    }
}
