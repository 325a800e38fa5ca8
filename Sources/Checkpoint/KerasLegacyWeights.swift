import CHDF5
import Model

/// Keras' legacy `.h5` weights layout at the root of a file, exactly as Keras 3.15's
/// `legacy_h5_format.save_weights_to_hdf5_group` writes it (through h5py) and
/// `model.load_weights("x.h5")` reads it:
///
///     @layer_names      variable-length ASCII strings: every layer of `model.layers`, in order
///     @backend          variable-length ASCII string "tensorflow"
///     @keras_version    variable-length ASCII string "3.15.1"
///     <layer>/          one group per layer, created in name order
///       @weight_names   variable-length ASCII strings ["<layer>/kernel", "<layer>/bias"];
///                       for a layer without weights an empty float64 array (h5py's `[]`)
///       <layer>/kernel  float32 little-endian, contiguous, Keras shape
///       <layer>/bias    (so the datasets are /<layer>/<layer>/kernel and .../bias)
///     top_level_model_weights/   @weight_names empty
///
/// Keras 2 spelled the weight names with a `:0` suffix (`conv2d/kernel:0`); reading follows the
/// `weight_names` attribute, so both load.
enum KerasLegacyWeights {
    /// What Keras records about itself; its loader only uses these to convert Keras 1 files.
    static let backend = "tensorflow"
    /// The Keras version whose loader this layout was checked against.
    static let kerasVersion = "3.15.1"

    /// The weighted layers of `configuration` in model order, each with its parameter views.
    static func weightedLayers(_ configuration: UNetConfiguration) -> [(layer: String, views: [ParameterView])] {
        var result: [(layer: String, views: [ParameterView])] = []
        for view in configuration.parameterTable {
            if result.last?.layer == view.layer {
                result[result.count - 1].views.append(view)
            } else {
                result.append((view.layer, [view]))
            }
        }
        return result
    }

    /// Writes the layout into the (new, empty) file `file`.
    static func write(_ file: hid_t, configuration: UNetConfiguration, parameters: UnsafeBufferPointer<Float>) throws {
        let layers = configuration.layers
        try H5.setAttribute(file, "layer_names", strings: layers.map(\.name))
        try H5.setAttribute(file, "backend", string: backend)
        try H5.setAttribute(file, "keras_version", string: kerasVersion)
        let views = Dictionary(grouping: configuration.parameterTable, by: \.layer)
        for name in layers.map(\.name).sorted() + ["top_level_model_weights"] {
            let group = try H5.createGroup(file, name)
            defer { H5.close(group) }
            guard let views = views[name] else {
                try H5.setEmptyAttribute(group, "weight_names")
                continue
            }
            try H5.setAttribute(group, "weight_names", strings: views.map { "\(name)/\($0.name)" })
            let inner = try H5.createGroup(group, name)
            defer { H5.close(inner) }
            for view in views {
                let slice = UnsafeBufferPointer(rebasing: parameters[view.offset..<(view.offset + view.count)])
                H5.close(try H5.writeFloats(inner, view.name, slice, shape: view.shape))
            }
        }
    }

    /// Reads the weights of `configuration` from `file` as Keras does (by order, not by name):
    /// the layers of `layer_names` whose `weight_names` is not empty are matched in turn with the
    /// configuration's layers with weights, and each listed dataset is read straight into its
    /// slice of the result after its shape was checked against the parameter table. Like Keras,
    /// a full-model file (`model.save("x.h5")`) is read from its `model_weights` group.
    static func read(_ file: hid_t, configuration: UNetConfiguration) throws -> [Float] {
        guard !H5.hasAttribute(file, "layer_names"), H5.exists(file, "model_weights") else {
            return try read(root: file, prefix: "", configuration: configuration)
        }
        let group = try H5.openGroup(file, "model_weights")
        defer { H5.close(group) }
        return try read(root: group, prefix: "model_weights/", configuration: configuration)
    }

    /// `read` from the group `root`, whose path plus a slash is `prefix` (for messages).
    private static func read(root: hid_t, prefix: String, configuration: UNetConfiguration) throws -> [Float] {
        guard H5.hasAttribute(root, "layer_names") else {
            throw HDF5Problem("missing attribute layer_names (not a Keras weights file)")
        }
        var stored: [(layer: String, weights: [String])] = []
        for name in try H5.stringsAttribute(root, "layer_names") {
            guard H5.exists(root, name) else { throw HDF5Problem("missing group \(prefix)\(name)") }
            let group = try H5.openGroup(root, name)
            defer { H5.close(group) }
            let weights = H5.hasAttribute(group, "weight_names")
                ? try H5.stringsAttribute(group, "weight_names") : []
            if !weights.isEmpty { stored.append((name, weights)) }
        }
        let expected = weightedLayers(configuration)
        guard stored.count == expected.count else {
            throw HDF5Problem("the file has \(stored.count) layers with weights,"
                + " \(configuration) has \(expected.count)")
        }
        var parameters = [Float](repeating: 0, count: configuration.parameterCount)
        try parameters.withUnsafeMutableBufferPointer { buffer in
            for (saved, model) in zip(stored, expected) {
                guard saved.weights.count == model.views.count else {
                    throw HDF5Problem("layer \(prefix)\(saved.layer) has \(saved.weights.count) weights,"
                        + " \(model.layer) needs \(model.views.count)")
                }
                for (weight, view) in zip(saved.weights, model.views) {
                    let path = "\(saved.layer)/\(weight)"
                    guard H5.exists(root, path) else { throw HDF5Problem("missing dataset \(prefix)\(path)") }
                    let dataset = try H5.openDataset(root, path)
                    defer { H5.close(dataset) }
                    let shape = try H5.shape(dataset, prefix + path)
                    guard shape == view.shape else {
                        throw HDF5Problem("dataset \(prefix)\(path) has shape \(tuple(shape)),"
                            + " \(view.layer).\(view.name) needs \(tuple(view.shape))")
                    }
                    let slice = UnsafeMutableBufferPointer(rebasing: buffer[view.offset..<(view.offset + view.count)])
                    try H5.readFloats(dataset, prefix + path, into: slice)
                }
            }
        }
        return parameters
    }
}

/// A shape as Python prints it: `(3, 3, 1, 4)`, `(4,)`, `()`.
func tuple(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}
