import DataIO

/// Turns a predicted probability map (at the model's `rows x cols`) into the binary mask Kaggle
/// scores (at the original image's `height x width`).
public enum SubmissionMask {
    /// Thresholds `probabilities` (row-major `rows x cols`) at `threshold` (`p > threshold` is 1,
    /// NaN is 0), enlarges the 0/1 image to `height x width` with `Resize` (bilinear, pixel
    /// centres aligned; area averaging on an axis that shrinks), and sets a pixel when the
    /// interpolated value is > 0.5. Returns the row-major `height x width` mask of 0 and 1.
    ///
    /// The 0.5 boundary puts the enlarged outline where the scaled outline of the small mask is
    /// (a block of rows 16..<32 of 64 becomes rows 105..<210 of 420), with corners slightly
    /// rounded. The tutorial's `submission.py` differs at the outline: its cv2 version rounds
    /// OpenCV's uint8 bilinear result (about this same boundary), while its skimage version sets
    /// every pixel > 0 after `skimage.transform.resize`, which grows every mask all around, by up
    /// to half a model pixel (3 pixels of 420 for a 64-row model: rows 102..<213 above). We keep
    /// the 0.5 boundary.
    /// - Precondition: `probabilities.count == rows * cols`; all sizes positive.
    public static func binarize(probabilities: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                                threshold: Float, height: Int, width: Int) -> [UInt8] {
        var binarizer = Binarizer(rows: rows, cols: cols, height: height, width: width)
        return [UInt8](unsafeUninitializedCapacity: height * width) { mask, initialized in
            binarizer.binarize(probabilities, threshold: threshold, into: mask)
            initialized = height * width
        }
    }

    /// The same for an array of `rows * cols` probabilities.
    public static func binarize(probabilities: [Float], rows: Int, cols: Int,
                                threshold: Float, height: Int, width: Int) -> [UInt8] {
        probabilities.withUnsafeBufferPointer {
            binarize(probabilities: $0, rows: rows, cols: cols, threshold: threshold, height: height, width: width)
        }
    }
}

/// `SubmissionMask.binarize` for many images of one size, reusing its scratch buffers.
struct Binarizer {
    let rows: Int, cols: Int, height: Int, width: Int
    private var binary: [Float]
    private var enlarged: [Float]

    init(rows: Int, cols: Int, height: Int, width: Int) {
        precondition(rows > 0 && cols > 0 && height > 0 && width > 0,
                     "SubmissionMask: sizes \(rows)x\(cols) to \(height)x\(width) must be positive")
        (self.rows, self.cols, self.height, self.width) = (rows, cols, height, width)
        binary = [Float](repeating: 0, count: rows * cols)
        enlarged = [Float](repeating: 0, count: height * width)
    }

    /// Writes the `height x width` 0/1 mask of one probability map into `mask`; returns how many
    /// pixels are set.
    @discardableResult
    mutating func binarize(_ probabilities: UnsafeBufferPointer<Float>, threshold: Float,
                           into mask: UnsafeMutableBufferPointer<UInt8>) -> Int {
        precondition(probabilities.count == rows * cols && mask.count == height * width,
                     "SubmissionMask: \(probabilities.count) probabilities for \(rows)x\(cols), \(mask.count) mask pixels for \(height)x\(width)")
        let (rows, cols, height, width) = (self.rows, self.cols, self.height, self.width)
        binary.withUnsafeMutableBufferPointer { binary in
            for i in 0..<binary.count { binary[i] = probabilities[i] > threshold ? 1 : 0 }
            enlarged.withUnsafeMutableBufferPointer { enlarged in
                Resize.resize(UnsafeBufferPointer(binary), count: 1, height: rows, width: cols,
                              outHeight: height, outWidth: width, into: enlarged)
            }
        }
        var set = 0
        enlarged.withUnsafeBufferPointer { enlarged in
            for i in 0..<mask.count {
                let on: UInt8 = enlarged[i] > 0.5 ? 1 : 0
                mask[i] = on
                set += Int(on)
            }
        }
        return set
    }
}
