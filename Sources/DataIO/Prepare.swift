import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The first step of the pipeline (the original tutorial's `data.py`): the Kaggle folder of TIFFs
/// to NumPy arrays.
///
/// Reads `raw/train/<subject>_<n>.tif` with `raw/train/<subject>_<n>_mask.tif` and
/// `raw/test/<id>.tif` (each of them may be a `.png` instead), and writes to `out/`:
///
/// | file                     | shape     | dtype | content                                  |
/// |--------------------------|-----------|-------|------------------------------------------|
/// | `imgs_train.npy`         | (N, H, W) | uint8 | training images, by subject then number  |
/// | `imgs_mask_train.npy`    | (N, H, W) | uint8 | their masks (0 or 255), same order       |
/// | `imgs_subject_train.npy` | (N,)      | int32 | the subject of each training image       |
/// | `imgs_test.npy`          | (M, H, W) | uint8 | test images, by id                       |
/// | `imgs_id_test.npy`       | (M,)      | int32 | the id of each test image                |
///
/// H and W come from the data (420 x 580 for Kaggle); every image of a split must have the same
/// size. Files that are not `.tif` (such as `.DS_Store`) are skipped with a note; a `.tif` whose
/// name does not parse, an image without its mask or a mask without its image, a damaged TIFF,
/// a size mismatch, or a missing or empty folder is an error naming the file, and then nothing is
/// written: all five files are written under temporary names and renamed only when all are complete.
public struct DatasetPreparer: Sendable {
    public let rawDirectory: String
    public let outputDirectory: String
    /// Threads decoding TIFFs (default: every core).
    public var threads: Int
    /// For masks of several labels: the label that is the nerve (its pixels become 255, every
    /// other 0). Without it, the masks must be two-valued (`normalizeMasks`).
    public var label: UInt8? = nil

    public init(raw: String, out: String, threads: Int = max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))) {
        rawDirectory = raw.hasSuffix("/") && raw.count > 1 ? String(raw.dropLast()) : raw
        outputDirectory = out.hasSuffix("/") && out.count > 1 ? String(out.dropLast()) : out
        self.threads = max(1, threads)
    }

    /// The names of the five output files, in the order they are written.
    public static let outputNames = [
        "imgs_train.npy", "imgs_mask_train.npy", "imgs_subject_train.npy", "imgs_test.npy", "imgs_id_test.npy",
    ]

    /// What `run` did.
    public struct Report: Sendable {
        public var trainCount = 0
        public var testCount = 0
        public var trainSize = (height: 0, width: 0)
        public var testSize = (height: 0, width: 0)
        /// Files passed over, each with the reason (one line each).
        public var notes: [String] = []
        /// Paths of the files written.
        public var outputs: [String] = []
    }

    /// A training pair or a test image found by name.
    struct Sample: Sendable {
        var key: [Int]          // (subject, n) or (id)
        var image: String
        var mask: String?
    }

    /// Scans, decodes and writes. `progress(done, total)` is called as images are decoded
    /// (from any thread, serialised).
    public func run(progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> Report {
        var report = Report()
        let trainFolder = rawDirectory + "/train"
        let testFolder = rawDirectory + "/test"
        let train = try scanTrain(trainFolder, notes: &report.notes)
        let test = try scanTest(testFolder, notes: &report.notes)
        try ensureWritableFolder(outputDirectory)

        let total = train.count * 2 + test.count
        let counter = Mutex(0)
        let tick: @Sendable () -> Void = {
            let done = counter.withLock { value -> Int in value += 1; return value }
            progress?(done, total)
        }
        let trainImages = try decodeStack(train.map(\.image), folder: trainFolder, tick: tick)
        var trainMasks = try decodeStack(train.map { $0.mask! }, folder: trainFolder, tick: tick,
                                         requiredSize: trainImages.size, masks: true)
        if let note = try Self.normalizeMasks(&trainMasks.pixels, plane: trainImages.size.height * trainImages.size.width,
                                              files: train.map { trainFolder + "/" + $0.mask! }, label: label) {
            report.notes.append(note)
        }
        let testImages = try decodeStack(test.map(\.image), folder: testFolder, tick: tick)

        report.trainCount = train.count
        report.testCount = test.count
        report.trainSize = trainImages.size
        report.testSize = testImages.size

        let outputs = StagedOutputs()
        func path(_ name: String) -> String { outputDirectory + "/" + name }
        let (th, tw) = trainImages.size
        let (sh, sw) = testImages.size
        try outputs.stage(path("imgs_train.npy")) {
            try NPY.save(NDArray(shape: [train.count, th, tw], scalars: trainImages.pixels), to: $0)
        }
        try outputs.stage(path("imgs_mask_train.npy")) {
            try NPY.save(NDArray(shape: [train.count, th, tw], scalars: trainMasks.pixels), to: $0)
        }
        try outputs.stage(path("imgs_subject_train.npy")) {
            try NPY.save(NDArray(shape: [train.count], scalars: train.map { Int32($0.key[0]) }), to: $0)
        }
        try outputs.stage(path("imgs_test.npy")) {
            try NPY.save(NDArray(shape: [test.count, sh, sw], scalars: testImages.pixels), to: $0)
        }
        try outputs.stage(path("imgs_id_test.npy")) {
            try NPY.save(NDArray(shape: [test.count], scalars: test.map { Int32($0.key[0]) }), to: $0)
        }
        try outputs.commit()
        report.outputs = Self.outputNames.map(path)
        return report
    }

    // MARK: Scanning

    /// Parses a non-negative decimal integer of at most 9 digits (no sign, no spaces).
    static func parseNumber(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 9, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }

    /// The image files read: TIFF (Kaggle's) and PNG (most other public sets).
    static let imageExtensions = [".tif", ".png"]

    /// `name` without its image extension; nil for other files.
    static func stem(_ name: String) -> Substring? {
        imageExtensions.first(where: { name.hasSuffix($0) }).map { name.dropLast($0.count) }
    }

    /// Decodes an image file by its extension: PNG through libpng, TIFF through libtiff.
    static func readImage(_ path: String) throws -> TIFFImage {
        path.hasSuffix(".png") ? try PNGRead.luminance(path) : try TIFF.read(path)
    }

    /// `<subject>_<n>.tif` → (subject, n, false); `<subject>_<n>_mask.tif` → (subject, n, true);
    /// the same with `.png`.
    static func parseTrainName(_ name: String) -> (subject: Int, index: Int, isMask: Bool)? {
        guard let stem = stem(name) else { return nil }
        var parts = stem.split(separator: "_", omittingEmptySubsequences: false)
        var isMask = false
        if parts.count == 3, parts[2] == "mask" { isMask = true; parts.removeLast() }
        guard parts.count == 2, let subject = parseNumber(parts[0]), let index = parseNumber(parts[1]) else { return nil }
        return (subject, index, isMask)
    }

    /// `<id>.tif` (or `.png`) → id.
    static func parseTestName(_ name: String) -> Int? {
        stem(name).flatMap(parseNumber)
    }

    /// The file names in `folder`, sorted; an error if it is missing or not a folder.
    static func list(_ folder: String) throws -> [String] {
        var info = stat()
        guard stat(folder, &info) == 0 else { throw DataError(folder, "missing folder (\(systemErrorText()))") }
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw DataError(folder, "not a folder") }
        guard let dir = opendir(folder) else { throw DataError(folder, "cannot list: \(systemErrorText())") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Files that are not TIFF or PNG images are passed over with a note; everything else must
    /// parse.
    static func isCandidate(_ name: String, folder: String, notes: inout [String]) -> Bool {
        if stem(name) != nil && !name.hasPrefix(".") { return true }
        notes.append("\(folder)/\(name): skipped, not a .tif or .png image")
        return false
    }

    func scanTrain(_ folder: String, notes: inout [String]) throws -> [Sample] {
        var images: [[Int]: String] = [:]
        var masks: [[Int]: String] = [:]
        for name in try Self.list(folder) where Self.isCandidate(name, folder: folder, notes: &notes) {
            guard let parsed = Self.parseTrainName(name) else {
                throw DataError("\(folder)/\(name)", "file name does not parse: training files are named <subject>_<n>.tif and <subject>_<n>_mask.tif (or .png)")
            }
            let key = [parsed.subject, parsed.index]
            if parsed.isMask {
                if let other = masks[key] { throw DataError("\(folder)/\(name)", "duplicate mask for \(key[0])_\(key[1]) (also \(other))") }
                masks[key] = name
            } else {
                if let other = images[key] { throw DataError("\(folder)/\(name)", "duplicate image \(key[0])_\(key[1]) (also \(other))") }
                images[key] = name
            }
        }
        for key in images.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where masks[key] == nil {
            throw DataError("\(folder)/\(images[key]!)", "training image has no mask (expected \(key[0])_\(key[1])_mask.tif or .png beside it)")
        }
        for key in masks.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where images[key] == nil {
            throw DataError("\(folder)/\(masks[key]!)", "mask has no training image (expected \(key[0])_\(key[1]).tif or .png beside it)")
        }
        guard !images.isEmpty else { throw DataError(folder, "no training images (expected <subject>_<n>.tif with <subject>_<n>_mask.tif, or .png)") }
        return images.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }).map {
            Sample(key: $0, image: images[$0]!, mask: masks[$0]!)
        }
    }

    func scanTest(_ folder: String, notes: inout [String]) throws -> [Sample] {
        var images: [Int: String] = [:]
        for name in try Self.list(folder) where Self.isCandidate(name, folder: folder, notes: &notes) {
            guard let id = Self.parseTestName(name) else {
                throw DataError("\(folder)/\(name)", "file name does not parse: test files are named <id>.tif (or .png)")
            }
            if let other = images[id] { throw DataError("\(folder)/\(name)", "duplicate test id \(id) (also \(other))") }
            images[id] = name
        }
        guard !images.isEmpty else { throw DataError(folder, "no test images (expected <id>.tif or <id>.png)") }
        return images.keys.sorted().map { Sample(key: [$0], image: images[$0]!, mask: nil) }
    }

    /// Creates `folder` if needed and checks that a file can be created in it.
    func ensureWritableFolder(_ folder: String) throws {
        var info = stat()
        if stat(folder, &info) != 0 {
            if mkdir(folder, 0o755) != 0 { throw DataError(folder, "cannot create output folder: \(systemErrorText())") }
        } else if (info.st_mode & S_IFMT) != S_IFDIR {
            throw DataError(folder, "output path exists and is not a folder")
        }
        let probe = StagedOutputs.temporaryPath(for: folder + "/.write-probe")
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw DataError(folder, "output folder is not writable: \(systemErrorText())") }
        close(fd)
        unlink(probe)
    }

    // MARK: Decoding

    struct Stack: @unchecked Sendable {
        var pixels: [UInt8]
        var size: (height: Int, width: Int)
    }

    /// Makes the masks 0 and 255, as training reads them, whatever convention wrote them:
    /// with `label`, its pixels 255 and all others 0; without, the values of all the masks
    /// together must be two at most, one of them 0 (0/255 as Kaggle's, 0/1, 0 and a label
    /// index, or an RGB colour's luminance): the other becomes 255, with a note unless it was
    /// 255. A mask that brings a third value, or two without 0, is refused in one line naming
    /// its file and the values found. `pixels` holds the masks of `files`, `plane` bytes each.
    static func normalizeMasks(_ pixels: inout [UInt8], plane: Int, files: [String], label: UInt8?) throws -> String? {
        if let label {
            for i in pixels.indices { pixels[i] = pixels[i] == label ? 255 : 0 }
            return nil
        }
        var seen = [Bool](repeating: false, count: 256)
        for (k, file) in files.enumerated() {
            var mine = [Bool](repeating: false, count: 256)
            for p in pixels[(k * plane)..<((k + 1) * plane)] { mine[Int(p)] = true }
            for v in 0..<256 where mine[v] { seen[v] = true }
            let all = (0..<256).filter { seen[$0] }
            if all.count > 2 || (all.count == 2 && all[0] != 0) {
                let values = (0..<256).filter { mine[$0] }.map(String.init).joined(separator: ", ")
                throw DataError(file, "mask holds the values \(values)"
                    + (all.count > 2 ? " (all masks so far: \(all.map(String.init).joined(separator: ", ")))" : "")
                    + ": a mask has two values, 0 for the background and one for the nerve (0/255, 0/1, ...);"
                    + " for masks of several labels, --label N takes label N as the nerve")
            }
        }
        guard let nerve = (1..<256).first(where: { seen[$0] }), nerve != 255 else { return nil }
        for i in pixels.indices where pixels[i] == UInt8(nerve) { pixels[i] = 255 }
        return "masks hold 0 and \(nerve): taken as 0 and 255 (the nerve \(nerve))"
    }

    /// Decodes `names` (all of one size) into one contiguous (count, H, W) buffer, on `threads`
    /// threads; each image is written straight into its slice. The first error in file order wins.
    func decodeStack(_ names: [String], folder: String, tick: @Sendable () -> Void,
                     requiredSize: (height: Int, width: Int)? = nil, masks: Bool = false) throws -> Stack {
        let first = try Self.readImage(folder + "/" + names[0])
        let size = requiredSize ?? (first.height, first.width)
        let plane = size.height * size.width
        let count = names.count
        let memory = physicalMemoryBytes()
        guard count <= memory / plane else {
            throw DataError(folder, "\(count) images of \(size.width)x\(size.height) pixels need \(count * plane) bytes,"
                + " more than this machine's \(memory) bytes of memory")
        }
        let errors = Mutex<[Int: DataError]>([:])
        var pixels = [UInt8](repeating: 0, count: count * plane)
        pixels.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let output = buffer
            let workers = min(threads, count)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                for i in stride(from: worker, to: count, by: workers) {
                    let path = folder + "/" + names[i]
                    do {
                        let image = i == 0 ? first : try Self.readImage(path)
                        guard image.height == size.height, image.width == size.width else {
                            let others = requiredSize == nil ? "the other images of \(folder) are" : "the training images are"
                            throw DataError(path, "image is \(image.width)x\(image.height) (width x height) but \(others) \(size.width)x\(size.height)")
                        }
                        let gray = masks ? image.maskValues() : image.gray8()
                        gray.withUnsafeBufferPointer { source in
                            UnsafeMutableRawPointer(output.baseAddress! + i * plane)
                                .copyMemory(from: source.baseAddress!, byteCount: plane)
                        }
                        tick()
                    } catch let error as DataError {
                        errors.withLock { $0[i] = error }
                    } catch {
                        errors.withLock { $0[i] = DataError(path, "\(error)") }
                    }
                }
            }
        }
        if let firstError = errors.withLock({ $0.min(by: { $0.key < $1.key })?.value }) { throw firstError }
        return Stack(pixels: pixels, size: size)
    }
}
