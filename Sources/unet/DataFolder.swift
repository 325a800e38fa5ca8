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

    /// Training images (normalised later) and masks in [0, 1], resized, with their subjects.
    func loadTraining(rows: Int, cols: Int) throws -> (samples: Samples, subjects: [Int32]) {
        let loaded = try loadTrainingWithOriginals(rows: rows, cols: cols)
        return (loaded.samples, loaded.subjects)
    }

    /// The same, and the arrays as read: images and masks (N, H, W) at their original size.
    func loadTrainingWithOriginals(rows: Int, cols: Int) throws
        -> (samples: Samples, subjects: [Int32], images: NDArray<UInt8>, masks: NDArray<UInt8>) {
        let images = try NPY.loadImageStack(file("imgs_train.npy"))
        let masks = try NPY.loadImageStack(file("imgs_mask_train.npy"))
        guard masks.shape == images.shape else {
            throw DataError(file("imgs_mask_train.npy"), "shape \(masks.shape) differs from imgs_train.npy's \(images.shape)")
        }
        let n = images.shape[0]
        guard n > 0 else { throw DataError(file("imgs_train.npy"), "holds no images") }
        var subjects: [Int32]
        let subjectFile = file("imgs_subject_train.npy")
        if fileExists(subjectFile) {
            let s = try NPY.load(subjectFile, as: Int32.self)
            guard s.shape == [n] else { throw DataError(subjectFile, "shape \(s.shape), expected (\(n),)") }
            subjects = s.scalars
        } else {
            // Without subjects (arrays from elsewhere), each image is its own subject.
            subjects = (0..<n).map { Int32($0) }
        }
        return (Samples(rows: rows, cols: cols,
                        images: Preprocessing.resize(images, rows: rows, cols: cols),
                        masks: Preprocessing.resize(masks, rows: rows, cols: cols, scale: 1 / 255)),
                subjects, images, masks)
    }

    /// Test images resized (not yet normalised), their ids, and the images as read, (M, H, W) at
    /// their original size.
    func loadTest(rows: Int, cols: Int) throws -> (samples: Samples, ids: [Int32], originals: NDArray<UInt8>) {
        let images = try NPY.loadImageStack(file("imgs_test.npy"))
        let n = images.shape[0]
        let idFile = file("imgs_id_test.npy")
        let ids = try NPY.load(idFile, as: Int32.self)
        guard ids.shape == [n] else { throw DataError(idFile, "shape \(ids.shape), expected (\(n),)") }
        return (Samples(rows: rows, cols: cols, images: Preprocessing.resize(images, rows: rows, cols: cols)),
                ids.scalars, images)
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
