#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import DataIO

/// The Kaggle submission file: `img,pixels`, then one line `id,rle` per test image.
public enum Submission {
    /// The header line (without its newline).
    public static let header = "img,pixels"

    /// What `write` wrote.
    public struct Summary: Sendable, Equatable {
        /// Rows written (test images).
        public var images: Int
        /// Rows with a non-empty run-length string (at least `minPixels` pixels set).
        public var nonEmpty: Int

        public init(images: Int, nonEmpty: Int) {
            self.images = images
            self.nonEmpty = nonEmpty
        }
    }

    /// Writes the submission for `ids.count` predicted masks: `masks` holds the probability maps
    /// (`ids.count x rows x cols`, row-major, in the order of `ids`); each is made binary at the
    /// original `height x width` by `SubmissionMask.binarize` and encoded by `RunLength.encode`
    /// (`""` below `minPixels` set pixels).
    ///
    /// The file is the header `img,pixels` and one line `id,rle` per image, rows sorted by id
    /// ascending (as the tutorial's `submission.py`), `\n` line endings. It is written under a
    /// temporary name and renamed into place when complete, so a failure leaves neither `path`
    /// nor a temporary file behind.
    ///
    /// Throws a `DataError` naming `path` when an id appears twice, `masks` does not hold
    /// `ids.count * rows * cols` values, a size is not positive, `threshold` is not finite,
    /// `minPixels` is negative, or the file cannot be written.
    @discardableResult
    public static func write(ids: [Int32], masks: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                             height: Int, width: Int, threshold: Float, minPixels: Int,
                             to path: String) throws -> Summary {
        guard rows > 0, cols > 0, height > 0, width > 0 else {
            throw DataError(path, "cannot write masks of \(rows)x\(cols) for images of \(height)x\(width): sizes must be positive")
        }
        let (perMask, overflow) = rows.multipliedReportingOverflow(by: cols)
        guard !overflow, masks.count / perMask == ids.count, masks.count % perMask == 0 else {
            throw DataError(path, "\(masks.count) mask values do not make \(ids.count) masks of \(rows)x\(cols)")
        }
        guard threshold.isFinite else { throw DataError(path, "threshold \(threshold) is not a number") }
        guard minPixels >= 0 else { throw DataError(path, "minimum pixel count \(minPixels) is negative") }
        if let duplicate = duplicateId(in: ids) {
            throw DataError(path, "image id \(duplicate.id) appears twice (at positions \(duplicate.first) and \(duplicate.second) of the ids)")
        }

        let order = ids.indices.sorted { ids[$0] < ids[$1] }
        var summary = Summary(images: ids.count, nonEmpty: 0)
        try writeAtomically(path) { temporary in
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
            guard fd >= 0 else {
                throw DataError(path, "cannot create temporary file \(temporary): \(String(cString: strerror(errno)))")
            }
            var isOpen = true
            defer { if isOpen { close(fd) } }

            var text: [UInt8] = []
            text.reserveCapacity(1 << 20)
            text += Array(header.utf8)
            text.append(UInt8(ascii: "\n"))
            var binarizer = Binarizer(rows: rows, cols: cols, height: height, width: width)
            var mask = [UInt8](repeating: 0, count: height * width)
            try mask.withUnsafeMutableBufferPointer { mask in
                for image in order {
                    let probabilities = UnsafeBufferPointer(rebasing: masks[(image * perMask)..<((image + 1) * perMask)])
                    binarizer.binarize(probabilities, threshold: threshold, into: mask)
                    let rle = RunLength.encode(mask: UnsafeBufferPointer(mask), height: height, width: width,
                                               minPixels: minPixels)
                    if !rle.isEmpty { summary.nonEmpty += 1 }
                    text += String(ids[image]).utf8
                    text.append(UInt8(ascii: ","))
                    text += rle.utf8
                    text.append(UInt8(ascii: "\n"))
                    if text.count >= 1 << 20 {
                        try writeAll(fd, text, path: path)
                        text.removeAll(keepingCapacity: true)
                    }
                }
            }
            try writeAll(fd, text, path: path)
            isOpen = false
            if close(fd) != 0 {
                throw DataError(path, "write error: \(String(cString: strerror(errno)))")
            }
        }
        return summary
    }

    /// The same for masks held in an array.
    @discardableResult
    public static func write(ids: [Int32], masks: [Float], rows: Int, cols: Int,
                             height: Int, width: Int, threshold: Float, minPixels: Int,
                             to path: String) throws -> Summary {
        try masks.withUnsafeBufferPointer {
            try write(ids: ids, masks: $0, rows: rows, cols: cols, height: height, width: width,
                      threshold: threshold, minPixels: minPixels, to: path)
        }
    }

    /// The first id that appears twice in `ids` (by its second occurrence), with both positions
    /// (0-based); nil when every id is distinct.
    public static func duplicateId(in ids: [Int32]) -> (id: Int32, first: Int, second: Int)? {
        var seen: [Int32: Int] = [:]
        seen.reserveCapacity(ids.count)
        for (position, id) in ids.enumerated() {
            if let first = seen.updateValue(position, forKey: id) { return (id, first, position) }
        }
        return nil
    }
}

/// Writes all of `bytes` to `fd`, looping over short writes; errors name `path`.
private func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
    try bytes.withUnsafeBytes { bytes in
        guard let base = bytes.baseAddress else { return }
        var done = 0
        while done < bytes.count {
            let n = write(fd, base + done, bytes.count - done)
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError(path, "write error: \(String(cString: strerror(errno)))")
            }
            done += n
        }
    }
}
