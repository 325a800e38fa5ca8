import DataIO
import Distributed
import Training

/// The labelled images `unet evaluate` and `unet report` score: the validation subjects `unet
/// train` held out for the same `--validation-split` (or every training image), at the model's
/// size and normalised as in training. Rank 0 reads them and every rank receives `set` (each
/// predicts a share); the rows, the subjects and the arrays at their original size (for the
/// pictures) are rank 0's.
struct LabelledImages {
    /// The model-size samples of `indices`, normalised (every rank).
    var set: Samples
    /// The rows of `imgs_train.npy` scored, in data order (rank 0).
    var indices: [Int] = []
    /// The subject of every training image, by row (rank 0).
    var subjects: [Int32] = []
    /// `imgs_train.npy` and `imgs_mask_train.npy` as read, (N, H, W) (rank 0, with `originals`).
    var images = NDArray<UInt8>(shape: [0, 0, 0], scalars: [])
    var masks = NDArray<UInt8>(shape: [0, 0, 0], scalars: [])

    /// Rank 0 reads `data` (the folder `unet prepare` wrote) for a model of `rows x cols`,
    /// normalises by the checkpoint's `mean` and `std`, keeps the validation subjects (every
    /// image with `all`), and broadcasts the samples. `originals` keeps the arrays at their
    /// original size too. No validation subject for `validationSplit` is one line naming `data`.
    static func load(data: String, rows: Int, cols: Int, mean: Float, std: Float, validationSplit: Double,
                     all: Bool, originals: Bool, communicator comm: any Communicator) throws -> LabelledImages {
        var labelled = LabelledImages(set: Samples(rows: rows, cols: cols, images: [], masks: []))
        if comm.isRoot {
            let folder = DataFolder(path: data)
            var samples: Samples
            if originals {
                let loaded = try folder.loadTrainingWithOriginals(rows: rows, cols: cols)
                (samples, labelled.subjects) = (loaded.samples, loaded.subjects)
                (labelled.images, labelled.masks) = (loaded.images, loaded.masks)
            } else {
                (samples, labelled.subjects) = try folder.loadTraining(rows: rows, cols: cols)
            }
            Preprocessing.normalize(&samples.images, mean: mean, std: std)
            labelled.indices = all ? Array(labelled.subjects.indices)
                                   : Preprocessing.splitBySubject(labelled.subjects, fraction: validationSplit).validation
            guard !labelled.indices.isEmpty else {
                throw DataError(data, "no validation subjects for --validation-split \(validationSplit) (use --all)")
            }
            labelled.set = samples.subset(labelled.indices)
        }
        try labelled.set.broadcast(comm)
        return labelled
    }
}
