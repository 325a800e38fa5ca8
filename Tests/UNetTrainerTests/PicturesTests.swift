import CPNG
import Foundation
import Testing
import DataIO
import Pictures
import Submission
import Synchronization

/// PNG files through libpng (written, then decoded back by libpng and compared pixel for
/// pixel), mask outlines, overlays, and `unet predict --png` / `unet evaluate --png`.
@Suite("Pictures")
struct PicturesTests {
    /// An image whose every pixel differs from its neighbours in each channel.
    static func pattern(width: Int, height: Int) -> RGBImage {
        var pixels: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                pixels += [UInt8((x * 37 + y * 11) % 256), UInt8((x * 5 + y * 91 + 7) % 256), UInt8((x ^ y) * 13 % 256)]
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    /// A row-major `height x width` mask with the rectangle `xs x ys` set.
    static func rectangle(width: Int, height: Int, xs: Range<Int>, ys: Range<Int>) -> [UInt8] {
        var mask = [UInt8](repeating: 0, count: width * height)
        for y in ys { for x in xs { mask[y * width + x] = 1 } }
        return mask
    }

    /// The file's own header through libpng (not through `PNG.read`): size and format.
    static func libpngHeader(_ path: String) -> (width: Int, height: Int, format: UInt32)? {
        var png = png_image()
        png.version = png_uint_32(PNG_IMAGE_VERSION)
        defer { png_image_free(&png) }
        guard png_image_begin_read_from_file(&png, path) != 0 else { return nil }
        return (Int(png.width), Int(png.height), png.format)
    }

    // MARK: PNG

    @Test(arguments: [(1, 1), (7, 5), (580, 420)])
    func pngIsDecodedBackByLibpngPixelForPixel(width: Int, height: Int) throws {
        try withTemporaryDirectory { dir in
            let image = Self.pattern(width: width, height: height)
            let path = dir + "/image.png"
            try PNG.write(image, to: path)
            #expect(listing(dir) == ["image.png"])  // no temporary file left

            let bytes = try readBytes(path)
            #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])  // the PNG signature
            // IHDR first: width and height big-endian, 8 bits per sample, colour type 2 (RGB).
            #expect(String(decoding: bytes[12..<16], as: UTF8.self) == "IHDR")
            #expect(bytes[16..<20].reduce(0) { $0 << 8 | Int($1) } == width)
            #expect(bytes[20..<24].reduce(0) { $0 << 8 | Int($1) } == height)
            #expect(bytes[24] == 8 && bytes[25] == 2)

            let header = try #require(Self.libpngHeader(path))
            #expect(header.width == width && header.height == height && header.format == UInt32(PNG_FORMAT_RGB))
            let decoded = try PNG.read(path)
            #expect(decoded.width == width && decoded.height == height)
            #expect(decoded.pixels == image.pixels)
            #expect(decoded[x: width - 1, y: height - 1] == image[x: width - 1, y: height - 1])
        }
    }

    /// `PNG.encode` gives the bytes `PNG.write` puts in a file (the same libpng, the same
    /// settings): decoded back pixel for pixel, also for noise that does not compress (so the
    /// first buffer, half the raw size, is too small and libpng says how much it needs).
    @Test func pngEncodesToMemory() throws {
        var generator = SystemRandomNumberGenerator()
        let noise = RGBImage(width: 97, height: 61, pixels: (0..<(97 * 61 * 3)).map { _ in UInt8.random(in: 0...255, using: &generator) })
        for image in [Self.pattern(width: 580, height: 420), noise, Self.pattern(width: 1, height: 1)] {
            let bytes = try PNG.encode(image, name: "picture")
            #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]))
            try withTemporaryDirectory { dir in
                try writeBytes(bytes, dir + "/encoded.png")
                #expect(try PNG.read(dir + "/encoded.png") == image)
                try PNG.write(image, to: dir + "/written.png")
                #expect(try readBytes(dir + "/written.png") == bytes)
            }
        }
    }

    @Test func pngOverwritesAtomically() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/a.png"
            try PNG.write(Self.pattern(width: 3, height: 2), to: path)
            let gray = RGBImage(gray: [0, 50, 100, 150, 200, 255], width: 3, height: 2)
            try PNG.write(gray, to: path)
            #expect(try PNG.read(path) == gray)
            #expect(try PNG.read(path)[x: 1, y: 1] == RGB(gray: 200))
            #expect(listing(dir) == ["a.png"])
        }
    }

    @Test func pngErrorsAreOneLineNamingTheFile() throws {
        try withTemporaryDirectory { dir in
            let image = Self.pattern(width: 4, height: 4)
            // A folder that does not exist.
            let missing = dir + "/no/such/folder/a.png"
            let writeError = #expect(throws: DataError.self) { try PNG.write(image, to: missing) }
            #expect(writeError?.path == missing && writeError?.description.contains("No such file or directory") == true,
                    "\(String(describing: writeError))")
            // Not a PNG, a truncated PNG, no file.
            try writeBytes(Array("not a picture".utf8), dir + "/text.png")
            let good = dir + "/good.png"
            try PNG.write(image, to: good)
            let bytes = try readBytes(good)
            try writeBytes(Array(bytes.prefix(bytes.count / 2)), dir + "/truncated.png")
            for name in ["text.png", "truncated.png", "absent.png"] {
                let error = #expect(throws: DataError.self) { try PNG.read(dir + "/" + name) }
                #expect(error?.path == dir + "/" + name)
                #expect(error.map { !$0.description.contains("\n") && !$0.problem.isEmpty } == true, "\(String(describing: error))")
            }
            #expect(listing(dir) == ["good.png", "text.png", "truncated.png"])
        }
    }

    // MARK: Outlines and overlays

    @Test func outlineOfASquareIsExactlyItsBorder() {
        let (width, height) = (10, 8)
        let mask = Self.rectangle(width: width, height: height, xs: 2..<6, ys: 3..<7)
        let outline = Outline.of(mask, width: width, height: height)
        for y in 0..<height {
            for x in 0..<width {
                let border = (2..<6).contains(x) && (3..<7).contains(y) && (x == 2 || x == 5 || y == 3 || y == 6)
                #expect(outline[y * width + x] == (border ? 1 : 0), "pixel (\(x), \(y))")
            }
        }
        #expect(outline.reduce(0) { $0 + Int($1) } == 12)  // 4 x 4 square: 16 pixels, 4 inside
    }

    @Test func outlinesOfOtherShapes() {
        // A pixel alone is its own outline; no mask, no outline.
        let one = Self.rectangle(width: 5, height: 5, xs: 2..<3, ys: 2..<3)
        #expect(Outline.of(one, width: 5, height: 5) == one)
        #expect(Outline.of([UInt8](repeating: 0, count: 12), width: 4, height: 3).allSatisfy { $0 == 0 })
        // A mask that fills the image is outlined along the image's edge.
        let full = Outline.of([UInt8](repeating: 255, count: 20), width: 5, height: 4)
        #expect(full == [1, 1, 1, 1, 1,
                         1, 0, 0, 0, 1,
                         1, 0, 0, 0, 1,
                         1, 1, 1, 1, 1])
        // Diagonal neighbours do not count: a plus sign's centre is inside.
        let plus: [UInt8] = [0, 1, 0,
                             1, 1, 1,
                             0, 1, 0]
        #expect(Outline.of(plus, width: 3, height: 3) == [0, 1, 0, 1, 0, 1, 0, 1, 0])
    }

    @Test func overlayDrawsBothOutlinesAndKeepsTheGrayElsewhere() throws {
        let (width, height) = (12, 9)
        let gray = (0..<(width * height)).map { UInt8($0 * 2 % 256) }
        let predicted = Self.rectangle(width: width, height: height, xs: 1..<6, ys: 1..<6)
        let truth = Self.rectangle(width: width, height: height, xs: 3..<9, ys: 1..<8)
        let picture = Overlay.draw(image: gray, width: width, height: height, predicted: predicted, truth: truth)
        let p = Outline.of(predicted, width: width, height: height), t = Outline.of(truth, width: width, height: height)
        var seen = Set<RGB>()
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                let expected = p[i] == 1 && t[i] == 1 ? Overlay.agreeingColour
                    : p[i] == 1 ? Overlay.predictedColour : t[i] == 1 ? Overlay.trueColour : RGB(gray: gray[i])
                #expect(picture[x: x, y: y] == expected, "pixel (\(x), \(y))")
                seen.insert(expected)
            }
        }
        #expect(seen.isSuperset(of: [Overlay.agreeingColour, Overlay.predictedColour, Overlay.trueColour]))
        // The top edge y = 1 is on both outlines for x in 3..<6.
        #expect(picture[x: 4, y: 1] == Overlay.agreeingColour)
        // Without masks the picture is the gray image in colour; it survives a PNG round trip.
        let plain = Overlay.draw(image: gray, width: width, height: height, predicted: nil)
        #expect(plain == RGBImage(gray: gray, width: width, height: height))
        try withTemporaryDirectory { dir in
            try PNG.write(picture, to: dir + "/overlay.png")
            #expect(try PNG.read(dir + "/overlay.png") == picture)
        }
    }

    /// The smaller overlay (`unet report`'s pictures): half size for 580x420 into 290x210, the
    /// gray of each 2x2 block averaged, the masks shrunk and outlined at the small size, so the
    /// outlines are one pixel wide in their own colours; a small image is not enlarged.
    @Test func reducedOverlayOutlinesAtTheSmallSize() throws {
        let (width, height) = (580, 420)
        let gray = (0..<(width * height)).map { UInt8(($0 % width + $0 / width) % 200) }
        let truth = Self.rectangle(width: width, height: height, xs: 100..<200, ys: 50..<150)
        let predicted = Self.rectangle(width: width, height: height, xs: 100..<200, ys: 100..<300)
        let picture = Overlay.drawReduced(image: gray, width: width, height: height, predicted: predicted, truth: truth,
                                          maxWidth: 290, maxHeight: 210)
        #expect(picture.width == 290 && picture.height == 210)
        let smallGray = (0..<(290 * 210)).map { i -> UInt8 in
            let (x, y) = (2 * (i % 290), 2 * (i / 290))
            let sum = [gray[y * width + x], gray[y * width + x + 1], gray[(y + 1) * width + x], gray[(y + 1) * width + x + 1]]
                .reduce(0) { $0 + Int($1) }
            return UInt8((Double(sum) / 4).rounded())
        }
        let expected = Overlay.draw(image: smallGray, width: 290, height: 210,
                                    predicted: Self.rectangle(width: 290, height: 210, xs: 50..<100, ys: 50..<150),
                                    truth: Self.rectangle(width: 290, height: 210, xs: 50..<100, ys: 25..<75))
        #expect(picture == expected)
        #expect(picture[x: 50, y: 25] == Overlay.trueColour && picture[x: 50, y: 149] == Overlay.predictedColour)
        #expect(picture[x: 50, y: 60] == Overlay.agreeingColour)

        let small = Overlay.drawReduced(image: [7, 8, 9, 10], width: 2, height: 2, predicted: nil, truth: nil,
                                        maxWidth: 290, maxHeight: 210)
        #expect(small == RGBImage(gray: [7, 8, 9, 10], width: 2, height: 2))
    }

    @Test func forEachThrowsTheFirstFailureAndRunsEveryIndexOtherwise() throws {
        let done = Mutex<Set<Int>>([])
        try Pictures.forEach(50, threads: 4) { i in _ = done.withLock { $0.insert(i) } }
        #expect(done.withLock { $0 } == Set(0..<50))
        struct Failure: Error, Equatable { let index: Int }
        let error = #expect(throws: Failure.self) {
            try Pictures.forEach(10, threads: 1) { i in if i >= 3 { throw Failure(index: i) } }
        }
        #expect(error == Failure(index: 3))
    }

    // MARK: The command line

    /// A tiny trained model on a synthetic set: `dir/data` and `dir/unet.h5`.
    static func trainTiny(in dir: String, train: Int, test: Int) throws {
        let synth = try CLITests.run(["synth", "--out", dir + "/raw", "--train", "\(train)", "--test", "\(test)",
                                      "--subjects", "2", "--seed", "11"])
        #expect(synth.status == 0, "\(synth.stderr)")
        #expect(try CLITests.run(["prepare", "--raw", dir + "/raw", "--out", dir + "/data"]).status == 0)
        let trained = try CLITests.run(["train", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5", "--epochs", "1",
                                        "--batch-size", "2", "--rows", "16", "--cols", "16", "--filters", "2", "--depth", "2",
                                        "--lr", "1e-3"])
        #expect(trained.status == 0, "\(trained.stderr)")
    }

    /// One PNG per test image, named by id, at the original 580x420: the test image's gray
    /// everywhere but on the predicted outline, which is exactly the outline of the mask the
    /// submission would hold.
    @Test func predictPNGWritesEachTestImageWithItsPredictedOutline() throws {
        try withTemporaryDirectory { dir in
            try Self.trainTiny(in: dir, train: 4, test: 3)
            let pictures = dir + "/pictures/nested"
            let predict = try CLITests.run(["predict", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5",
                                            "--out", dir + "/p.npy", "--png", pictures])
            #expect(predict.status == 0, "\(predict.stderr)")
            #expect(predict.stderr.contains("3 to \(pictures)"), "\(predict.stderr)")
            #expect(listing(pictures) == ["1.png", "2.png", "3.png"])

            let images = try NPY.load(dir + "/data/imgs_test.npy", as: UInt8.self)
            let ids = try NPY.load(dir + "/data/imgs_id_test.npy", as: Int32.self)
            let p = try NPY.load(dir + "/p.npy", as: Float.self)
            #expect(images.shape == [3, 420, 580])
            let plane = 420 * 580
            for (i, id) in ids.scalars.enumerated() {
                let picture = try PNG.read("\(pictures)/\(id).png")
                #expect(picture.width == 580 && picture.height == 420)
                let mask = SubmissionMask.binarize(probabilities: Array(p.scalars[(i * 256)..<((i + 1) * 256)]),
                                                   rows: 16, cols: 16, threshold: 0.5, height: 420, width: 580)
                let outline = Outline.of(mask, width: 580, height: 420)
                let expected = Overlay.draw(image: Array(images.scalars[(i * plane)..<((i + 1) * plane)]),
                                            width: 580, height: 420, predicted: mask)
                #expect(picture == expected, "\(id).png")
                #expect(picture.pixels.count == 3 * plane)
                var green = 0
                for k in 0..<plane where outline[k] == 1 {
                    green += 1
                    #expect(RGB(picture.pixels[3 * k], picture.pixels[3 * k + 1], picture.pixels[3 * k + 2]) == Overlay.predictedColour)
                }
                #expect(green == outline.reduce(0) { $0 + Int($1) })
            }
        }
    }

    /// `evaluate --png`: one picture per evaluated image and scores.csv, whose kaggle column
    /// averages to the score evaluate prints.
    @Test func evaluatePNGWritesPicturesAndScores() throws {
        try withTemporaryDirectory { dir in
            try Self.trainTiny(in: dir, train: 4, test: 1)
            let pictures = dir + "/eval"
            let evaluate = try CLITests.run(["evaluate", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5",
                                             "--all", "--png", pictures])
            #expect(evaluate.status == 0, "\(evaluate.stderr)")
            #expect(listing(pictures) == ["0.png", "1.png", "2.png", "3.png", "scores.csv"])
            let csv = String(decoding: try readBytes(pictures + "/scores.csv"), as: UTF8.self)
            let lines = csv.split(separator: "\n", omittingEmptySubsequences: false)
            #expect(lines.count == 6 && lines.last == "", "\(csv)")
            #expect(lines.first == "index,subject,file,dice,kaggle,kaggle_full,true_pixels,predicted_pixels")
            let rows = lines.dropFirst().dropLast().map { $0.split(separator: ",").map(String.init) }
            #expect(rows.map { $0[0] } == ["0", "1", "2", "3"] && rows.map { $0[1] } == ["1", "1", "2", "2"])
            #expect(rows.map { $0[2] } == ["0.png", "1.png", "2.png", "3.png"])
            let masks = try NPY.load(dir + "/data/imgs_mask_train.npy", as: UInt8.self)
            let plane = 420 * 580
            for (i, row) in rows.enumerated() {
                #expect(row.count == 8)
                let truePixels = masks.scalars[(i * plane)..<((i + 1) * plane)].reduce(0) { $0 + ($1 > 127 ? 1 : 0) }
                #expect(Int(row[6]) == truePixels)
                for k in 3...5 { #expect(Double(row[k]).map { (0...1).contains($0) } == true, "\(row)") }
                let picture = try PNG.read(pictures + "/" + row[2])
                #expect(picture.width == 580 && picture.height == 420)
                // An image with a nerve shows its true outline (red, or yellow where the prediction agrees).
                let outlined = (0..<plane).contains { k in
                    let c = RGB(picture.pixels[3 * k], picture.pixels[3 * k + 1], picture.pixels[3 * k + 2])
                    return c == Overlay.trueColour || c == Overlay.agreeingColour
                }
                #expect(outlined == (truePixels > 0), "\(row)")
            }
            let meanKaggle = rows.map { Double($0[4])! }.reduce(0, +) / Double(rows.count)
            let printed = try #require(evaluate.stdout.split(separator: " ").last.flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
            #expect(abs(meanKaggle - printed) <= 0.00006, "\(evaluate.stdout)")
        }
    }

    /// A --png that cannot be a folder is one line naming it, before any work: no probabilities
    /// written, no pictures.
    @Test func unwritablePNGFolderIsOneLineNamingIt() throws {
        try withTemporaryDirectory { dir in
            try Self.trainTiny(in: dir, train: 2, test: 1)
            try writeBytes(Array("a file".utf8), dir + "/file")
            let cases = [(dir + "/file/pictures", "cannot create the folder: Not a directory"),
                         (dir + "/file", "not a folder: --png names the folder for the pictures")]
            for (folder, problem) in cases {
                let predict = try CLITests.run(["predict", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5",
                                                "--out", dir + "/p.npy", "--png", folder])
                #expect(predict.status == 1)
                #expect(predict.stderr == "error: \(folder): \(problem)\n", "\(predict.stderr)")
                let evaluate = try CLITests.run(["evaluate", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5",
                                                 "--all", "--png", folder])
                #expect(evaluate.status == 1 && evaluate.stdout.isEmpty)
                #expect(evaluate.stderr == "error: \(folder): \(problem)\n", "\(evaluate.stderr)")
            }
            #expect(!listing(dir).contains("p.npy"))
            // A read-only folder (only meaningful without root's override of permissions).
            if geteuid() != 0 {
                let readOnly = dir + "/read-only"
                try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: false)
                chmod(readOnly, 0o555)
                defer { chmod(readOnly, 0o755) }
                let predict = try CLITests.run(["predict", "--data", dir + "/data", "--checkpoint", dir + "/unet.h5",
                                                "--out", dir + "/p.npy", "--png", readOnly])
                #expect(predict.status == 1 && predict.stderr == "error: \(readOnly): cannot write into the folder: Permission denied\n",
                        "\(predict.stderr)")
                #expect(listing(readOnly).isEmpty)
            }
        }
    }
}
