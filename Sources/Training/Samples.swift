import DataIO
import Distributed

/// Model-ready samples: images resized to the model's size and normalised, masks resized and
/// scaled to [0, 1], all `count x rows x cols` Float, contiguous.
public struct Samples: Sendable {
    public var rows: Int
    public var cols: Int
    public var images: [Float]
    /// Empty when there are no masks (the test set).
    public var masks: [Float]
    public var count: Int { images.count / (rows * cols) }

    public init(rows: Int, cols: Int, images: [Float], masks: [Float] = []) {
        self.rows = rows
        self.cols = cols
        self.images = images
        self.masks = masks
    }

    /// The samples at `indices`, in that order.
    public func subset(_ indices: [Int]) -> Samples {
        let plane = rows * cols
        var images = [Float](), masks = [Float]()
        images.reserveCapacity(indices.count * plane)
        for i in indices { images.append(contentsOf: self.images[(i * plane)..<((i + 1) * plane)]) }
        if !self.masks.isEmpty {
            masks.reserveCapacity(indices.count * plane)
            for i in indices { masks.append(contentsOf: self.masks[(i * plane)..<((i + 1) * plane)]) }
        }
        return Samples(rows: rows, cols: cols, images: images, masks: masks)
    }
}

extension Samples {
    /// Makes every rank's samples the root's: the root reads and preprocesses, the others receive
    /// (what they held before is replaced).
    public mutating func broadcast(_ comm: any Communicator, root: Int = 0) throws {
        guard comm.size > 1 else { return }
        let header = try comm.broadcast((Int64(rows), Int64(cols), Int64(images.count), Int64(masks.count)), root: root)
        if comm.rank != root {
            rows = Int(header.0)
            cols = Int(header.1)
            images = [Float](repeating: 0, count: Int(header.2))
            masks = [Float](repeating: 0, count: Int(header.3))
        }
        try comm.broadcast(&images, root: root)
        try comm.broadcast(&masks, root: root)
    }
}

/// The tutorial's preprocessing: resize to rows x cols (area averaging), normalise images by the
/// training mean and standard deviation, masks to [0, 1].
public enum Preprocessing {
    /// Resizes a (N, H, W) uint8 stack to (N, rows, cols) Float, multiplied by `scale`.
    public static func resize(_ stack: NDArray<UInt8>, rows: Int, cols: Int, scale: Float = 1) -> [Float] {
        precondition(stack.shape.count == 3)
        let (n, h, w) = (stack.shape[0], stack.shape[1], stack.shape[2])
        var out = [Float](repeating: 0, count: n * rows * cols)
        stack.scalars.withUnsafeBufferPointer { s in
            out.withUnsafeMutableBufferPointer { o in
                Resize.resize(s, count: n, height: h, width: w, outHeight: rows, outWidth: cols, scale: scale, into: o)
            }
        }
        return out
    }

    /// Mean and (population) standard deviation, as `np.mean` and `np.std`, summed in Double.
    public static func meanAndStd(_ values: [Float]) -> (mean: Float, std: Float) {
        guard !values.isEmpty else { return (0, 1) }
        var sum = 0.0
        for v in values { sum += Double(v) }
        let mean = sum / Double(values.count)
        var squares = 0.0
        for v in values { let d = Double(v) - mean; squares += d * d }
        let std = (squares / Double(values.count)).squareRoot()
        return (Float(mean), Float(std > 0 ? std : 1))
    }

    /// `(x - mean) / std` in place.
    public static func normalize(_ values: inout [Float], mean: Float, std: Float) {
        let inv = 1 / std
        for i in values.indices { values[i] = (values[i] - mean) * inv }
    }

    /// Holds out whole subjects for validation: the last subjects in numeric order, as many as
    /// bring the held-out share closest to `fraction` (at least one subject when `fraction > 0`,
    /// and at least one left for training). Returns image indices of both parts, in data order.
    public static func splitBySubject(_ subjects: [Int32], fraction: Double) -> (train: [Int], validation: [Int]) {
        let all = Array(subjects.indices)
        guard fraction > 0 else { return (all, []) }
        let ordered = Array(Set(subjects)).sorted()
        guard ordered.count >= 2 else { return (all, []) }
        var counts: [Int32: Int] = [:]
        for s in subjects { counts[s, default: 0] += 1 }
        let target = fraction * Double(subjects.count)
        var held = 0, best = (k: 1, error: Double.infinity)
        for k in 1..<ordered.count {
            held += counts[ordered[ordered.count - k]]!
            let error = abs(Double(held) - target)
            if error < best.error { best = (k, error) }
        }
        let validationSubjects = Set(ordered.suffix(best.k))
        return (all.filter { !validationSubjects.contains(subjects[$0]) },
                all.filter { validationSubjects.contains(subjects[$0]) })
    }
}
