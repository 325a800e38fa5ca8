/// The tutorial's loss: `-dice_coef`, with
/// `dice_coef = (2 * sum(t * p) + smooth) / (sum(t) + sum(p) + smooth)` over the flattened batch
/// (not a mean over images), smooth = 1.
///
/// Split into sums and gradient so that data-parallel training can allreduce the three sums and
/// then every rank backpropagates with the global values: the result is exactly the gradient of
/// the one-process loss on the whole batch.
public enum DiceLoss {
    public static let smooth = 1.0

    /// The three sums the loss depends on (Double: a 64x80x32 batch has 163,840 terms).
    public struct Sums: Sendable, Equatable {
        public var intersection: Double
        public var predictions: Double
        public var targets: Double
        public init(intersection: Double = 0, predictions: Double = 0, targets: Double = 0) {
            self.intersection = intersection
            self.predictions = predictions
            self.targets = targets
        }
        public static func + (a: Sums, b: Sums) -> Sums {
            Sums(intersection: a.intersection + b.intersection, predictions: a.predictions + b.predictions,
                 targets: a.targets + b.targets)
        }
        /// The Dice coefficient of these sums.
        public var dice: Double { (2 * intersection + smooth) / (targets + predictions + smooth) }
        /// The loss, -dice.
        public var loss: Double { -dice }
    }

    public static func sums(predictions p: UnsafeBufferPointer<Float>, targets t: UnsafeBufferPointer<Float>) -> Sums {
        precondition(p.count == t.count)
        var s = Sums()
        for i in 0..<p.count {
            let (pi, ti) = (Double(p[i]), Double(t[i]))
            s.intersection += pi * ti
            s.predictions += pi
            s.targets += ti
        }
        return s
    }

    /// dL/dp_i = ((2I + s) - 2 t_i S) / S^2 with S = T + P + s, written to `gradient`.
    public static func gradient(predictions p: UnsafeBufferPointer<Float>, targets t: UnsafeBufferPointer<Float>,
                                sums: Sums, into gradient: UnsafeMutableBufferPointer<Float>) {
        precondition(p.count == t.count && gradient.count >= p.count)
        let s = sums.targets + sums.predictions + smooth
        let a = Float((2 * sums.intersection + smooth) / (s * s))
        let b = Float(2 / s)
        for i in 0..<p.count { gradient[i] = a - b * t[i] }
    }
}

/// The competition's metric: the mean over images of the Dice coefficient of the masks
/// thresholded at 0.5, `2 |A ∩ B| / (|A| + |B|)`, counting 1 for an image where both are empty.
public enum KaggleScore {
    /// Per-image scores for `count` images of `pixels` values each.
    public static func perImage(predictions p: UnsafeBufferPointer<Float>, targets t: UnsafeBufferPointer<Float>,
                                pixels: Int, threshold: Float = 0.5) -> [Double] {
        precondition(p.count == t.count && pixels > 0 && p.count % pixels == 0)
        return (0..<(p.count / pixels)).map { image in
            var (a, b, both) = (0, 0, 0)
            for i in (image * pixels)..<((image + 1) * pixels) {
                let inA = p[i] > threshold, inB = t[i] > 0.5
                if inA { a += 1 }
                if inB { b += 1 }
                if inA && inB { both += 1 }
            }
            return a + b == 0 ? 1 : 2 * Double(both) / Double(a + b)
        }
    }

    /// The mean score of predicting nothing for every image of `data`: the share of its images
    /// whose mask is empty (each scores 1, every other 0). A recipe that does not beat it has
    /// learned nothing usable. Nil without masks or images.
    public static func emptyPrediction(_ data: Samples) -> Double? {
        let plane = data.rows * data.cols
        guard data.count > 0, data.masks.count == data.count * plane else { return nil }
        let empty = data.masks.withUnsafeBufferPointer { m in
            (0..<data.count).filter { image in !m[(image * plane)..<((image + 1) * plane)].contains { $0 > 0.5 } }.count
        }
        return Double(empty) / Double(data.count)
    }
}
