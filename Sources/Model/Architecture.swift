/// The U-Net's layers in Keras' order and with Keras' automatic names, so that the parameter
/// table, the checkpoint layout and the golden tests all speak Keras.
///
/// Creation order of the tutorial's model (depth d):
/// `input_layer`; per encoder level: `conv2d`, `conv2d_1`, `max_pooling2d`; the bottom's two
/// convolutions; per decoder level: `up_sampling2d` (or `conv2d_transpose`), `concatenate`, two
/// convolutions; the final 1x1 `conv2d_N`. Keras numbers each kind of layer separately.
public struct LayerSpec: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case input, conv3x3, conv1x1, maxPool, upsample, convTranspose, concatenate
    }
    public let name: String
    public let kind: Kind
    /// Parameter shapes in Keras layout: `[kernel, bias]`, or empty for weightless layers.
    /// Conv2D kernel (kh, kw, in, out); Conv2DTranspose kernel (kh, kw, out, in).
    public let parameterShapes: [[Int]]
}

/// One named parameter array inside the model's single parameter buffer.
public struct ParameterView: Sendable, Equatable {
    /// The Keras layer, e.g. `conv2d_3`.
    public let layer: String
    /// `kernel` or `bias`.
    public let name: String
    public let shape: [Int]
    /// Offset and length in floats within the parameter (and gradient) buffer.
    public let offset: Int
    public let count: Int
    /// As Keras' legacy .h5 weights spell it: `conv2d_3/kernel:0`.
    public var kerasName: String { "\(layer)/\(name):0" }
}

extension UNetConfiguration {
    /// Every layer in Keras' `model.layers` order, weightless ones included.
    public var layers: [LayerSpec] {
        var counters: [String: Int] = [:]
        func name(_ base: String) -> String {
            let n = counters[base, default: 0]
            counters[base] = n + 1
            return n == 0 ? base : "\(base)_\(n)"
        }
        var layers: [LayerSpec] = [LayerSpec(name: "input_layer", kind: .input, parameterShapes: [])]
        func conv(_ cin: Int, _ cout: Int, _ k: Int = 3) {
            layers.append(LayerSpec(name: name("conv2d"), kind: k == 3 ? .conv3x3 : .conv1x1,
                                    parameterShapes: [[k, k, cin, cout], [cout]]))
        }
        var channels = 1
        for level in 0..<depth {
            conv(channels, filters(level: level))
            conv(filters(level: level), filters(level: level))
            layers.append(LayerSpec(name: name("max_pooling2d"), kind: .maxPool, parameterShapes: []))
            channels = filters(level: level)
        }
        conv(channels, filters(level: depth))
        conv(filters(level: depth), filters(level: depth))
        channels = filters(level: depth)
        for level in stride(from: depth - 1, through: 0, by: -1) {
            let f = filters(level: level)
            switch upsample {
            case .nearest:
                layers.append(LayerSpec(name: name("up_sampling2d"), kind: .upsample, parameterShapes: []))
            case .transpose:
                layers.append(LayerSpec(name: name("conv2d_transpose"), kind: .convTranspose,
                                        parameterShapes: [[2, 2, f, channels], [f]]))
                channels = f
            }
            layers.append(LayerSpec(name: name("concatenate"), kind: .concatenate, parameterShapes: []))
            conv(channels + f, f)
            conv(f, f)
            channels = f
        }
        conv(channels, 1, 1)
        return layers
    }

    /// The parameter table: kernel then bias of each layer with weights, in layer order, packed
    /// one after another in one buffer.
    public var parameterTable: [ParameterView] {
        var table: [ParameterView] = []
        var offset = 0
        for layer in layers {
            for (i, shape) in layer.parameterShapes.enumerated() {
                let count = shape.reduce(1, *)
                table.append(ParameterView(layer: layer.name, name: i == 0 ? "kernel" : "bias",
                                           shape: shape, offset: offset, count: count))
                offset += count
            }
        }
        return table
    }

    /// Total number of parameters.
    public var parameterCount: Int { parameterTable.last.map { $0.offset + $0.count } ?? 0 }

    /// Multiply-adds of one forward pass of one image (convolutions only), for GFLOP/s figures.
    public var forwardMultiplyAdds: Int {
        var total = 0
        var (h, w) = (rows, cols)
        for layer in layers {
            switch layer.kind {
            case .conv3x3, .conv1x1, .convTranspose:
                // Every kernel weight meets every input pixel once (a transposed 2x2 stride-2
                // convolution reads each input pixel for its 4 output positions).
                total += h * w * layer.parameterShapes[0].reduce(1, *)
                if layer.kind == .convTranspose { h *= 2; w *= 2 }
            case .maxPool: h /= 2; w /= 2
            case .upsample: h *= 2; w *= 2
            default: break
            }
        }
        return total
    }
}
