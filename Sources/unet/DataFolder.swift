import DataIO
import Training

/// The arrays `unet prepare` wrote, loaded and preprocessed for a model of `rows x cols`.
struct DataFolder {
    let path: String

    func file(_ name: String) -> String { path + "/" + name }

    /// What `unet train` and `unet evaluate` read (imgs_subject_train.npy is optional).
    static let trainingFiles = ["imgs_train.npy", "imgs_mask_train.npy"]
    /// What `unet predict` reads.
    static let testFiles = ["imgs_test.npy", "imgs_id_test.npy"]

    /// Checks that the folder exists and holds `names`, before any of them is read: a missing
    /// input is one line naming it, before any work.
    func require(_ names: [String]) throws {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw DataError(path, "missing data folder (\(String(cString: strerror(errno)))): --data names the folder `unet prepare` writes")
        }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw DataError(path, "not a folder: --data names the folder `unet prepare` writes")
        }
        for name in names where !fileExists(file(name)) {
            throw DataError(file(name), "missing from the data folder (`unet prepare` writes \(names.joined(separator: " and ")))")
        }
    }

    /// Images read at a time by the resizing loads: 64 of Kaggle's 580x420 are 16 MB.
    static let chunk = 64

    /// Training images (normalised later) and masks in [0, 1], resized, with their subjects. The
    /// arrays are read in chunks while they are resized, so only the resized ones are ever whole
    /// in memory (231 MB at 64x80 for Kaggle's 5,635 images, not 2.7 GB).
    func loadTraining(rows: Int, cols: Int) throws -> (samples: Samples, subjects: [Int32]) {
        let (images, shape) = try resized("imgs_train.npy", rows: rows, cols: cols)
        let (masks, maskShape) = try resized("imgs_mask_train.npy", rows: rows, cols: cols, scale: 1 / 255)
        guard maskShape == shape else {
            throw DataError(file("imgs_mask_train.npy"), "shape \(maskShape) differs from imgs_train.npy's \(shape)")
        }
        return (Samples(rows: rows, cols: cols, images: images, masks: masks), try subjects(count: shape[0]))
    }

    /// `name`'s image stack resized to rows x cols (times `scale`), read a chunk at a time, and
    /// its shape as stored (N, H, W).
    func resized(_ name: String, rows: Int, cols: Int, scale: Float = 1) throws -> (values: [Float], shape: [Int]) {
        let header = try NPY.readHeader(file(name))
        let shape = try NPY.imageStackShape(header, file(name))
        let plane = rows * cols
        var values = [Float](repeating: 0, count: shape[0] * plane)
        try values.withUnsafeMutableBufferPointer { out in
            let read = try NPY.forEachImageChunk(file(name), chunk: Self.chunk) { first, images in
                let n = images.count / (shape[1] * shape[2])
                Resize.resize(images, count: n, height: shape[1], width: shape[2], outHeight: rows, outWidth: cols,
                              scale: scale, into: UnsafeMutableBufferPointer(rebasing: out[(first * plane)..<((first + n) * plane)]))
            }
            guard read == shape else { throw DataError(file(name), "changed while it was read") }
        }
        return (values, shape)
    }

    /// The training images' subjects: imgs_subject_train.npy, or each image its own subject
    /// without it (arrays from elsewhere). At least one image.
    func subjects(count n: Int) throws -> [Int32] {
        guard n > 0 else { throw DataError(file("imgs_train.npy"), "holds no images") }
        let subjectFile = file("imgs_subject_train.npy")
        guard fileExists(subjectFile) else { return (0..<n).map { Int32($0) } }
        let s = try NPY.load(subjectFile, as: Int32.self)
        guard s.shape == [n] else { throw DataError(subjectFile, "shape \(s.shape), expected (\(n),)") }
        return s.scalars
    }

    /// The same, and the arrays as read: images and masks (N, H, W) at their original size.
    func loadTrainingWithOriginals(rows: Int, cols: Int) throws
        -> (samples: Samples, subjects: [Int32], images: NDArray<UInt8>, masks: NDArray<UInt8>) {
        let images = try NPY.loadImageStack(file("imgs_train.npy"))
        let masks = try NPY.loadImageStack(file("imgs_mask_train.npy"))
        guard masks.shape == images.shape else {
            throw DataError(file("imgs_mask_train.npy"), "shape \(masks.shape) differs from imgs_train.npy's \(images.shape)")
        }
        let subjects = try subjects(count: images.shape[0])
        return (Samples(rows: rows, cols: cols,
                        images: Preprocessing.resize(images, rows: rows, cols: cols),
                        masks: Preprocessing.resize(masks, rows: rows, cols: cols, scale: 1 / 255)),
                subjects, images, masks)
    }

    /// Test images resized (not yet normalised), their ids, and with `originals` the images as
    /// read, (M, H, W) at their original size (else an empty array, and the file is read in
    /// chunks while it is resized).
    func loadTest(rows: Int, cols: Int, originals: Bool) throws -> (samples: Samples, ids: [Int32], originals: NDArray<UInt8>) {
        let samples: Samples, shape: [Int], images: NDArray<UInt8>
        if originals {
            images = try NPY.loadImageStack(file("imgs_test.npy"))
            shape = images.shape
            samples = Samples(rows: rows, cols: cols, images: Preprocessing.resize(images, rows: rows, cols: cols))
        } else {
            let read = try resized("imgs_test.npy", rows: rows, cols: cols)
            (shape, images) = (read.shape, NDArray(shape: [0, 0, 0], scalars: []))
            samples = Samples(rows: rows, cols: cols, images: read.values)
        }
        let idFile = file("imgs_id_test.npy")
        let ids = try NPY.load(idFile, as: Int32.self)
        guard ids.shape == [shape[0]] else { throw DataError(idFile, "shape \(ids.shape), expected (\(shape[0]),)") }
        return (samples, ids.scalars, images)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

func fileExists(_ path: String) -> Bool {
    var info = stat()
    return stat(path, &info) == 0
}

/// `unet.h5` → `unet.last.h5` (`.last` before the extension, or appended without one).
func lastCheckpointPath(_ path: String) -> String {
    let slash = path.lastIndex(of: "/").map { path.index(after: $0) } ?? path.startIndex
    if let dot = path[slash...].lastIndex(of: "."), dot > slash {
        return String(path[..<dot]) + ".last" + String(path[dot...])
    }
    return path + ".last"
}

/// Creates the folders `path` is in, as `mkdir -p` does (nothing when they exist); a failure is
/// one line naming the folder.
func createFolders(containing path: String) throws {
    guard let slash = path.lastIndex(of: "/"), slash > path.startIndex else { return }
    let folder = String(path[..<slash])
    var info = stat()
    if stat(folder, &info) == 0 {
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw DataError(folder, "exists and is not a folder") }
        return
    }
    try createFolders(containing: folder)
    if mkdir(folder, 0o755) != 0 && errno != EEXIST {
        throw DataError(folder, "cannot create the checkpoint's folder: \(String(cString: strerror(errno)))")
    }
}
