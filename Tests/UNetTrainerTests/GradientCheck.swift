import Random

/// Finite-difference gradient checking shared by the kernel and model tests.
///
/// The loss of a check is `L = sum_i r_i * y_i` with fixed random weights `r`, accumulated in
/// Double, so dL/dy = r exactly and the central difference `(L(p + h) - L(p - h)) / 2h` is limited
/// only by Float rounding of the forward pass. Linear layers are checked with a large step; layers
/// with kinks (ReLU, max) are checked on inputs kept away from the kinks.
struct GradientCheck {
    var rng = SeededGenerator(seed: 2024)

    mutating func uniform(_ count: Int, _ range: ClosedRange<Double> = -1...1) -> [Float] {
        (0..<count).map { _ in Float(rng.uniform(range)) }
    }

    /// Compares `analytic[i]` with the central difference of `loss` with respect to `parameter[i]`
    /// for up to `samples` indices; returns the worst error relative to max(|numeric|, scale).
    static func worstError(parameter: UnsafeMutablePointer<Float>, count: Int, analytic: [Float],
                           step: Float = 1e-2, samples: Int = 40, scale: Double = 1e-2,
                           loss: () -> Double) -> Double {
        var worst = 0.0
        let stride = max(1, count / samples)
        for i in Swift.stride(from: 0, to: count, by: stride) {
            let saved = parameter[i]
            parameter[i] = saved + step
            let up = loss()
            parameter[i] = saved - step
            let down = loss()
            parameter[i] = saved
            let numeric = (up - down) / (2 * Double(step))
            let error = abs(numeric - Double(analytic[i])) / max(abs(numeric), scale)
            worst = max(worst, error)
        }
        return worst
    }
}

/// Sum of r_i * y_i in Double.
func weightedSum(_ y: UnsafePointer<Float>, _ r: [Float]) -> Double {
    var s = 0.0
    for i in 0..<r.count { s += Double(r[i]) * Double(y[i]) }
    return s
}
