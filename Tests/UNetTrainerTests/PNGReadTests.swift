import Foundation
import Testing
@testable import DataIO

/// `unet prepare`'s PNG reader against Pillow: the fixtures and what Pillow's `convert("L")`
/// makes of them were written by Fixtures/make_png_fixtures.py.
@Suite("PNG images for unet prepare")
struct PNGReadTests {
    static func fixture(_ name: String) -> String { fixturesDirectory.appendingPathComponent("png/\(name)").path }

    @Test(arguments: ["gray8", "rgb8", "palette_mask", "gray_alpha"])
    func luminanceAsPillow(name: String) throws {
        let image = try PNGRead.luminance(Self.fixture(name + ".png"))
        let expected = try NPY.load(Self.fixture(name + ".npy"), as: UInt8.self)
        #expect(expected.shape == [image.height, image.width] && image.bitsPerSample == 8)
        #expect(image.gray8() == expected.scalars)
    }

    @Test func notAPNGIsOneLineNamingTheFile() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/fake.png"
            try writeBytes(Array("GIF89a not a png".utf8), path)
            let error = #expect(throws: DataError.self) { try PNGRead.luminance(path) }
            #expect(error?.path == path && !(error?.description.contains("\n") ?? true))
        }
    }

    /// A raw folder of PNGs, the masks palette images of 0 and a colour (as label tools write
    /// them): prepared as TIFFs are, the masks 0/255 with a note.
    @Test func preparesPNGFolders() throws {
        try withTemporaryDirectory { dir in
            let raw = dir + "/raw"
            try FileManager.default.createDirectory(atPath: raw + "/train", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: raw + "/test", withIntermediateDirectories: true)
            for (target, source) in [("train/1_1.png", "gray8.png"), ("train/1_1_mask.png", "palette_mask.png"),
                                     ("train/2_1.png", "rgb8.png"), ("train/2_1_mask.png", "palette_mask.png"),
                                     ("test/1.png", "gray8.png")] {
                try FileManager.default.copyItem(atPath: Self.fixture(source), toPath: raw + "/" + target)
            }
            let report = try DatasetPreparer(raw: raw, out: dir + "/data").run()
            #expect(report.trainCount == 2 && report.testCount == 1)
            #expect(report.notes == ["masks hold 0 and 81: taken as 0 and 255 (the nerve 81)"])
            let images = try NPY.load(dir + "/data/imgs_train.npy", as: UInt8.self).scalars
            let gray = try NPY.load(Self.fixture("gray8.npy"), as: UInt8.self).scalars
            let rgb = try NPY.load(Self.fixture("rgb8.npy"), as: UInt8.self).scalars
            #expect(images == gray + rgb)
            let masks = try NPY.load(dir + "/data/imgs_mask_train.npy", as: UInt8.self).scalars
            let mask = try NPY.load(Self.fixture("palette_mask.npy"), as: UInt8.self).scalars.map { $0 == 0 ? UInt8(0) : 255 }
            #expect(masks == mask + mask && mask.contains(255))
        }
    }
}
