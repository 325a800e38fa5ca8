/// Adam exactly as Keras 3 applies it (float32 state, epsilon added to sqrt(v), bias correction
/// folded into the step size):
///
///     t = step + 1
///     m += (g - m) * (1 - beta1)
///     v += (g^2 - v) * (1 - beta2)
///     alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
///     w -= m * alpha / (sqrt(v) + epsilon)
///
/// One step updates the whole contiguous parameter buffer with the whole gradient buffer.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var epsilon: Float = 1e-7
    /// Steps taken so far (Keras' `iterations`).
    public var step: Int = 0
    /// First and second moment estimates, one per parameter.
    public var m: [Float]
    public var v: [Float]

    public init(parameterCount: Int, learningRate: Float = 1e-5) {
        self.learningRate = learningRate
        m = [Float](repeating: 0, count: parameterCount)
        v = [Float](repeating: 0, count: parameterCount)
    }

    /// Applies one step to `parameters` with `gradients`.
    public mutating func update(parameters: inout [Float], gradients: [Float]) {
        precondition(parameters.count == m.count && gradients.count == m.count)
        step += 1
        let t = Float(step)
        let alpha = learningRate * (1 - pow(beta2, t)).squareRoot() / (1 - pow(beta1, t))
        let (b1, b2, eps) = (1 - beta1, 1 - beta2, epsilon)
        m.withUnsafeMutableBufferPointer { m in
            v.withUnsafeMutableBufferPointer { v in
                parameters.withUnsafeMutableBufferPointer { w in
                    gradients.withUnsafeBufferPointer { g in
                        for i in 0..<w.count {
                            let gi = g[i]
                            m[i] += (gi - m[i]) * b1
                            v[i] += (gi * gi - v[i]) * b2
                            w[i] -= m[i] * alpha / (v[i].squareRoot() + eps)
                        }
                    }
                }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
