import Random
// Synthetic neck-ultrasound images and brachial-plexus nerve masks, in the shape of the Kaggle
// "Ultrasound Nerve Segmentation" data (580 x 420, 8-bit grayscale, masks 0/255).
//
// Image model. Each subject has its own anatomy: wavy horizontal tissue bands (bright skin line,
// subcutaneous fat, hypoechoic striated muscle, echogenic fat planes), thin bright broken fascia
// lines, sometimes an artery and a compressible vein (anechoic lumen, bright wall, posterior
// enhancement), often a deep bony arc casting an acoustic shadow that darkens with depth, and a
// nerve: a dark oval with a bright epineurial rim and a honeycomb of fascicles (dark spots with
// bright borders) in a bright fat halo. Each image re-draws the probe pose (shift, tilt, pressure,
// gain), jitters the nerve, decides whether the nerve is in view (about 40% of images), and draws
// fresh Rayleigh speckle (magnitude of a smoothed complex field, grains elongated laterally). The
// echo amplitude is attenuated with depth (partially compensated by TGC), darkened at the lateral
// edges, multiplied by the speckle and log-compressed to 8 bits. The mask is the nerve outline.
//
// Determinism. All randomness comes from `SeededGenerator`, with one stream per subject anatomy,
// per training image (seed, subject, index) and per test image (seed, id); all arithmetic uses
// IEEE operations and `PortableMath`, so every image is bit-identical on every platform and
// independent of which other images were generated, in which order or on which thread.

/// An invalid `SyntheticDataset` configuration.
public struct SyntheticConfigurationError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// A deterministic synthetic version of the nerve-segmentation data set.
///
/// Training images belong to subjects `1...subjects`, named `<subject>_<n>` with `n` from 1, as in
/// the Kaggle data; test images are numbered `1...testCount` and come from separate subjects
/// (five consecutive test ids per test subject). The configuration is validated by the throwing
/// initialiser and immutable afterwards, so generation never fails on a valid value.
public struct SyntheticDataset: Sendable {
    /// Number of training images.
    public let trainCount: Int
    /// Number of test images.
    public let testCount: Int
    /// Number of training subjects.
    public let subjects: Int
    /// Seed of everything.
    public let seed: UInt64
    /// Image size in pixels (the anatomy is scaled from the 580 x 420 reference frame).
    public let width: Int, height: Int

    /// Test images per test subject.
    static let testImagesPerSubject = 5

    /// Random stream domains.
    enum Domain: UInt64 {
        case trainAnatomy = 1, trainImage, testAnatomy, testImage
    }

    /// Creates a dataset description (nothing is generated yet).
    ///
    /// - Throws: `SyntheticConfigurationError` if a count is negative, `subjects` < 1 while
    ///   `trainCount` > 0, `subjects` > `trainCount` (a subject without images), or the size is
    ///   outside 64...4096 pixels in either direction.
    public init(trainCount: Int = 120, testCount: Int = 30, subjects: Int = 6, seed: UInt64 = 42,
                width: Int = 580, height: Int = 420) throws(SyntheticConfigurationError) {
        func fail(_ message: String) -> SyntheticConfigurationError {
            SyntheticConfigurationError(description: "invalid synthetic dataset: " + message)
        }
        guard trainCount >= 0 else { throw fail("trainCount must be >= 0 (got \(trainCount))") }
        guard testCount >= 0 else { throw fail("testCount must be >= 0 (got \(testCount))") }
        if trainCount > 0 {
            guard subjects >= 1 else { throw fail("subjects must be >= 1 when trainCount > 0 (got \(subjects))") }
            guard subjects <= trainCount else {
                throw fail("subjects (\(subjects)) must not exceed trainCount (\(trainCount))")
            }
        } else {
            guard subjects >= 0 else { throw fail("subjects must be >= 0 (got \(subjects))") }
        }
        guard (64...4096).contains(width), (64...4096).contains(height) else {
            throw fail("width and height must be in 64...4096 (got \(width) x \(height))")
        }
        self.trainCount = trainCount
        self.testCount = testCount
        self.subjects = subjects
        self.seed = seed
        self.width = width
        self.height = height
    }

    /// The training samples in order, subject by subject: `trainCount` images spread as evenly as
    /// possible over the subjects (the first `trainCount % subjects` subjects get one more).
    /// Each is written as `"<subject>_<index>.tif"`.
    public var trainSamples: [(subject: Int, index: Int)] {
        guard trainCount > 0 else { return [] }
        var samples: [(subject: Int, index: Int)] = []
        samples.reserveCapacity(trainCount)
        for subject in 1...subjects {
            let count = trainCount / subjects + (subject <= trainCount % subjects ? 1 : 0)
            for index in stride(from: 1, through: count, by: 1) { samples.append((subject, index)) }
        }
        return samples
    }

    /// The training image `<subject>_<index>` and its mask, row-major `height` x `width`.
    /// The mask is 255 inside the nerve and 0 elsewhere (all zero when the nerve is not in view).
    /// Depends only on `(seed, subject, index)`; any positive subject and index can be generated.
    public func trainImage(subject: Int, index: Int) -> (image: [UInt8], mask: [UInt8]) {
        let (anatomy, pose) = trainScene(subject: subject, index: index)
        return Renderer(width: width, height: height).render(anatomy: anatomy, pose: pose)
    }

    /// The test image `id` (from 1), row-major `height` x `width`. Test subjects are distinct from
    /// training subjects; about 40% of test images show the nerve, but no mask is provided.
    /// Depends only on `(seed, id)`.
    public func testImage(id: Int) -> [UInt8] {
        let (anatomy, pose) = testScene(id: id)
        return Renderer(width: width, height: height).render(anatomy: anatomy, pose: pose).image
    }

    // MARK: Scenes (internal: cheap, no pixels; the tests use them for statistics)

    func trainAnatomy(subject: Int) -> SubjectAnatomy {
        var rng = SeededGenerator(seed: seed, stream: Domain.trainAnatomy.rawValue, UInt64(subject))
        return SubjectAnatomy(rng: &rng)
    }

    func trainScene(subject: Int, index: Int) -> (anatomy: SubjectAnatomy, pose: ImagePose) {
        precondition(subject >= 1 && index >= 1, "subject and index start at 1 (got \(subject)_\(index))")
        let anatomy = trainAnatomy(subject: subject)
        var rng = SeededGenerator(seed: seed, stream: Domain.trainImage.rawValue, UInt64(subject), UInt64(index))
        let pose = fitted(ImagePose(anatomy: anatomy, hasNerve: anatomy.hasNerve(index: index), rng: &rng))
        return (anatomy, pose)
    }

    func testScene(id: Int) -> (anatomy: SubjectAnatomy, pose: ImagePose) {
        precondition(id >= 1, "test ids start at 1 (got \(id))")
        let testSubject = (id - 1) / Self.testImagesPerSubject + 1
        var anatomyRNG = SeededGenerator(seed: seed, stream: Domain.testAnatomy.rawValue, UInt64(testSubject))
        let anatomy = SubjectAnatomy(rng: &anatomyRNG)
        var rng = SeededGenerator(seed: seed, stream: Domain.testImage.rawValue, UInt64(id))
        let pose = fitted(ImagePose(anatomy: anatomy, hasNerve: anatomy.hasNerve(index: id), rng: &rng))
        return (anatomy, pose)
    }

    /// Nerve mask area bounds in pixels: 1,000...10,000 at 580 x 420, scaled with the image area.
    var nerveAreaRange: ClosedRange<Int> {
        let scale = Double(width * height) / (referenceWidth * referenceHeight)
        return Int((1_000 * scale).rounded(.up))...Int((10_000 * scale).rounded(.down))
    }

    /// Guarantees the rasterised nerve area lies in `nerveAreaRange` by rescaling the outline
    /// (a no-op for the sizes the anatomy draws, a safety net for the extremes).
    private func fitted(_ pose: ImagePose) -> ImagePose {
        guard var nerve = pose.nerve else { return pose }
        let renderer = Renderer(width: width, height: height)
        let range = nerveAreaRange
        for _ in 0..<6 {
            let area = renderer.nerveMask(nerve).reduce(0) { $0 + ($1 == 0 ? 0 : 1) }
            if range.contains(area) { break }
            let target = Double(area < range.lowerBound ? range.lowerBound : range.upperBound) * (area < range.lowerBound ? 1.05 : 0.95)
            let factor = (target / Double(max(area, 1))).squareRoot()
            nerve.a *= factor
            nerve.b *= factor
        }
        var result = pose
        result.nerve = nerve
        return result
    }
}
