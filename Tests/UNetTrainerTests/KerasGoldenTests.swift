import Foundation
import Testing
import DataIO
@testable import Model
@testable import Training

/// Our U-Net against Keras 3 on TensorFlow-CPU: the fixtures under Fixtures/keras/ were dumped once
/// by Fixtures/keras/make_keras_fixtures.py (the same model built in Keras, fixed weights, an input
/// batch and masks). Compared: every layer's activation, the output, the Dice loss, every
/// gradient, and the weights after one Adam step (lr 1e-3).
///
/// Tolerance: for each tensor, max |ours - Keras| <= 1e-4 x max |Keras| (+ 1e-7 absolute for
/// tensors that are all but zero). Float32 sums in another order differ by about 1e-6 relative.
@Suite("Golden tests against Keras")
struct KerasGoldenTests {
    static let tolerance: Float = 1e-4

    struct Fixture {
        let folder: URL
        let manifest: [String: Any]
        let configuration: UNetConfiguration

        init(_ name: String) throws {
            folder = fixturesDirectory.appendingPathComponent("keras/\(name)")
            let data = try Data(contentsOf: folder.appendingPathComponent("manifest.json"))
            manifest = try JSONSerialization.jsonObject(with: data) as! [String: Any]
            let c = manifest["config"] as! [String: Any]
            configuration = UNetConfiguration(rows: c["rows"] as! Int, cols: c["cols"] as! Int, filters: c["filters"] as! Int,
                                              depth: c["depth"] as! Int, upsample: Upsampling(rawValue: c["upsample"] as! String)!)
        }

        func array(_ file: String) throws -> [Float] {
            try NPY.load(folder.appendingPathComponent(file).path, as: Float.self).scalars
        }

        var weights: [[String: Any]] { manifest["weights"] as! [[String: Any]] }

        /// The manifest's entry for a parameter of our table.
        func entry(_ view: ParameterView) -> [String: Any] {
            weights.first { ($0["layer"] as! String) == view.layer && ($0["variable"] as! String) == view.name }!
        }
    }

    /// Worst |a - b| relative to max |b|.
    static func relativeError(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "sizes \(a.count) vs \(b.count)")
        var worst: Float = 0, scale: Float = 0
        for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])); scale = max(scale, abs(b[i])) }
        return scale < 1e-7 ? (worst < 1e-7 ? 0 : worst) : worst / scale
    }

    /// A model holding the fixture's weights and input, after one forward pass.
    static func model(_ f: Fixture) throws -> UNet {
        let batch = (f.manifest["config"] as! [String: Any])["batch"] as! Int
        let model = try UNet(configuration: f.configuration, maxBatch: batch)
        #expect(f.configuration.layers.map(\.name) == f.manifest["layer_names"] as! [String])
        #expect(f.weights.count == model.table.count)
        for view in model.table {
            let entry = f.entry(view)
            #expect(entry["shape"] as! [Int] == view.shape, "\(view.kerasName)")
            let values = try f.array(entry["file"] as! String)
            model.parameters.replaceSubrange(view.offset..<(view.offset + view.count), with: values)
        }
        let x = try f.array("x.npy")
        model.input.baseAddress!.update(from: x, count: x.count)
        model.forward(batch: batch)
        return model
    }

    static let names = ["d2_nearest", "d2_transpose", "d4_nearest", "d4_transpose"]

    @Test(arguments: names)
    func forwardMatchesKerasLayerByLayer(name: String) throws {
        let f = try Fixture(name)
        let model = try Self.model(f)
        let batch = model.maxBatch
        let activations = f.manifest["activations"] as! [String: [String: Any]]
        for layer in f.configuration.layers {
            guard let file = activations[layer.name]?["file"] as? String,
                  let ours = model.activation(of: layer.name, batch: batch) else { continue }
            let error = Self.relativeError(ours, try f.array(file))
            #expect(error <= Self.tolerance, "\(name) \(layer.name): relative error \(error)")
        }
        let output = Array(model.output[0..<(batch * f.configuration.rows * f.configuration.cols)])
        #expect(Self.relativeError(output, try f.array("output.npy")) <= Self.tolerance)
    }

    @Test(arguments: names)
    func lossGradientsAndAdamStepMatchKeras(name: String) throws {
        let f = try Fixture(name)
        let model = try Self.model(f)
        let pixels = model.maxBatch * f.configuration.rows * f.configuration.cols
        let y = try f.array("y.npy")
        let sums = y.withUnsafeBufferPointer { t in
            let p = UnsafeBufferPointer(rebasing: model.output[0..<pixels])
            let sums = DiceLoss.sums(predictions: p, targets: t)
            DiceLoss.gradient(predictions: p, targets: t, sums: sums,
                              into: UnsafeMutableBufferPointer(rebasing: model.outputGradient[0..<pixels]))
            return sums
        }
        let kerasLoss = Double(try f.array("loss.npy")[0])
        #expect(abs(sums.loss - kerasLoss) <= 1e-5 * abs(kerasLoss), "\(name) loss \(sums.loss) vs \(kerasLoss)")
        let kaggle = y.withUnsafeBufferPointer { t in
            KaggleScore.perImage(predictions: UnsafeBufferPointer(rebasing: model.output[0..<pixels]), targets: t,
                                 pixels: f.configuration.rows * f.configuration.cols)
        }
        let kerasKaggle = f.manifest["kaggle_scores_per_image"] as! [Double]
        #expect(zip(kaggle, kerasKaggle).allSatisfy { abs($0 - $1) < 1e-9 }, "\(kaggle) vs \(kerasKaggle)")

        model.backward(batch: model.maxBatch)
        for view in model.table {
            let ours = Array(model.gradients[view.offset..<(view.offset + view.count)])
            let error = Self.relativeError(ours, try f.array(f.entry(view)["gradient"] as! String))
            #expect(error <= Self.tolerance, "\(name) gradient \(view.kerasName): relative error \(error)")
        }

        var adam = Adam(parameterCount: model.parameters.count, learningRate: Float(f.manifest["learning_rate"] as! Double))
        adam.update(parameters: &model.parameters, gradients: model.gradients)
        for view in model.table {
            let entry = f.entry(view)
            let before = try f.array(entry["file"] as! String)
            let after = try f.array(entry["after_step"] as! String)
            let ours = Array(model.parameters[view.offset..<(view.offset + view.count)])
            // Compare the steps taken (after - before), not the weights, so the test sees the update.
            let error = Self.relativeError(zip(ours, before).map { $0 - $1 }, zip(after, before).map { $0 - $1 })
            #expect(error <= 1e-3, "\(name) Adam step \(view.kerasName): relative error \(error)")
        }
    }
}
