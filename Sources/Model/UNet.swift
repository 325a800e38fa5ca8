import Kernels
import Random

/// The U-Net: all parameters in one contiguous buffer, all gradients in another (as llm.c), a
/// table of named views into them in Keras' order, and activation buffers planned once for the
/// largest batch, so the training step allocates nothing.
///
/// Activations are NHWC. Each concatenation is one buffer per decoder level: the encoder's second
/// convolution writes into its upper channel slice and the upsampling into its lower one (the
/// upsampled tensor comes first, as in the tutorial's `concatenate([up, conv], axis=3)`); the
/// decoder reads it whole and nothing is copied. Gradient buffers mirror the activation buffers.
///
/// The model knows nothing of files, MPI or losses: `forward` maps the input buffer to
/// probabilities, `backward` maps dL/dprobabilities to parameter gradients.
public final class UNet: @unchecked Sendable {
    public let configuration: UNetConfiguration
    public let table: [ParameterView]
    /// All parameters, in `table` order.
    public var parameters: [Float]
    /// dL/dparameters of the last `backward`, same layout.
    public var gradients: [Float]
    /// The largest batch the buffers are planned for.
    public let maxBatch: Int
    /// How the 3x3 convolutions with more than one input channel run (the first layer, one input
    /// channel, is always im2col: its GEMM has k = 9 and Winograd's would have k = 1).
    public let convolution: ConvolutionAlgorithm

    /// The 3x3 convolution algorithms: both give the same results up to rounding
    /// (`WinogradTests`); Winograd F(2x2, 3x3) does 2.25x fewer multiplications.
    public enum ConvolutionAlgorithm: String, Sendable, CaseIterable {
        case im2col, winograd
    }

    // Per-level buffers (index = level). Each `Buffer` holds an activation and its gradient.
    private var encoderFirst: [Buffer] = []   // first conv of encoder level i
    private var concat: [Buffer] = []         // [upsampled | skip] at level i
    private var pooled: [Buffer] = []         // pooling of level i (input of level i + 1)
    private var bottom: [Buffer] = []         // the two bottom convolutions
    private var decoderFirst: [Buffer] = []   // first conv of decoder level i
    private var decoderSecond: [Buffer] = []  // second conv of decoder level i (input of the next up)
    private var inputBuffer: Buffer
    private var outputBuffer: Buffer
    private var work: UnsafeMutablePointer<Float>
    private let workCount: Int
    /// The two buffers the transient gradients alternate between (see `init`).
    private var gradientScratch: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>)

    /// Parameter offsets of the layers, in the order `forward` uses them.
    private struct Conv { let kernel: Int, bias: Int }
    private var encoderConvs: [(Conv, Conv)] = []
    private var bottomConvs: (Conv, Conv)
    private var upConvs: [Conv?] = []
    private var decoderConvs: [(Conv, Conv)] = []
    private var finalConv: Conv

    /// An activation and its gradient, `batch x height x width x channels`, owned by the model.
    /// A transient gradient (one step of `backward` writes it and the next reads it, then never
    /// again) lives in one of two shared scratch buffers instead (see `init`).
    final class Buffer {
        let height: Int, width: Int, channels: Int
        let value: UnsafeMutablePointer<Float>
        var gradient: UnsafeMutablePointer<Float>
        private var ownsGradient = true
        let count: Int
        init(batch: Int, height: Int, width: Int, channels: Int) {
            self.height = height
            self.width = width
            self.channels = channels
            count = batch * height * width * channels
            value = .allocate(capacity: count)
            value.initialize(repeating: 0, count: count)
            gradient = .allocate(capacity: count)
            gradient.initialize(repeating: 0, count: count)
        }
        /// Replaces the own gradient storage with `shared` (at least `count` floats).
        func shareGradient(_ shared: UnsafeMutablePointer<Float>) {
            if ownsGradient { gradient.deallocate() }
            gradient = shared
            ownsGradient = false
        }
        deinit {
            value.deallocate()
            if ownsGradient { gradient.deallocate() }
        }
        func view(_ batch: Int) -> TensorView {
            TensorView(base: value, batch: batch, height: height, width: width, channels: channels)
        }
        func grad(_ batch: Int) -> TensorView {
            TensorView(base: gradient, batch: batch, height: height, width: width, channels: channels)
        }
    }

    /// Builds the model with Keras' initialisation (Glorot-uniform kernels, zero biases) drawn from
    /// `SeededGenerator(seed)`, with buffers for batches of up to `maxBatch` images.
    public init(configuration: UNetConfiguration, seed: UInt64 = 0, maxBatch: Int,
                convolution: ConvolutionAlgorithm = .winograd) throws {
        try configuration.validate()
        precondition(maxBatch >= 1)
        self.configuration = configuration
        self.convolution = convolution
        self.maxBatch = maxBatch
        table = configuration.parameterTable
        parameters = [Float](repeating: 0, count: configuration.parameterCount)
        gradients = [Float](repeating: 0, count: configuration.parameterCount)

        // Offsets by layer, in table order.
        var convs: [Conv] = []
        var i = 0
        while i < table.count {
            convs.append(Conv(kernel: table[i].offset, bias: table[i + 1].offset))
            i += 2
        }
        let d = configuration.depth
        var next = 0
        func take() -> Conv { defer { next += 1 }; return convs[next] }
        for _ in 0..<d { encoderConvs.append((take(), take())) }
        bottomConvs = (take(), take())
        for _ in 0..<d {
            upConvs.append(configuration.upsample == .transpose ? take() : nil)
            decoderConvs.append((take(), take()))
        }
        finalConv = take()
        // Decoder lists were filled from the deepest level up; index them by level.
        upConvs.reverse()
        decoderConvs.reverse()

        // Buffers.
        let (r, c) = (configuration.rows, configuration.cols)
        inputBuffer = Buffer(batch: maxBatch, height: r, width: c, channels: 1)
        outputBuffer = Buffer(batch: maxBatch, height: r, width: c, channels: 1)
        // Workspace: per kernel thread, one image of im2col for the widest im2col convolution,
        // so that every chunk holds at least an image for each thread (Kernels.Parallel splits
        // chunks by images); one image of the transposed convolution's GEMM; and the Winograd
        // convolutions' transformed kernels and tile blocks (their own per-thread parts).
        let threads = max(1, Parallel.threads)
        let imagesPerChunk = min(threads, maxBatch)
        var workNeeded = 0
        func conv3x3(height h: Int, width w: Int, in ci: Int, out co: Int) {
            if ci == 1 || convolution == .im2col {
                workNeeded = max(workNeeded, h * w * 9 * max(ci, co) * imagesPerChunk)
            } else {
                workNeeded = max(workNeeded, Winograd3x3.workspace(inChannels: ci, outChannels: co, threads: threads))
            }
        }
        for level in 0..<d {
            let (h, w, f) = (r >> level, c >> level, configuration.filters(level: level))
            let up = configuration.upsample == .nearest ? 2 * f : f
            encoderFirst.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            concat.append(Buffer(batch: maxBatch, height: h, width: w, channels: up + f))
            pooled.append(Buffer(batch: maxBatch, height: h / 2, width: w / 2, channels: f))
            decoderFirst.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            decoderSecond.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            let inputChannels = level == 0 ? 1 : configuration.filters(level: level - 1)
            conv3x3(height: h, width: w, in: inputChannels, out: f)
            conv3x3(height: h, width: w, in: f, out: f)
            conv3x3(height: h, width: w, in: up + f, out: f)
            workNeeded = max(workNeeded, (h / 2) * (w / 2) * 4 * f)
        }
        let (hb, wb, fb) = (r >> d, c >> d, configuration.filters(level: d))
        bottom = [Buffer(batch: maxBatch, height: hb, width: wb, channels: fb),
                  Buffer(batch: maxBatch, height: hb, width: wb, channels: fb)]
        conv3x3(height: hb, width: wb, in: configuration.filters(level: d - 1), out: fb)
        conv3x3(height: hb, width: wb, in: fb, out: fb)
        // Gradient memory: only the concatenation buffers' gradients live long (the skip slice is
        // written in the decoder and read back in the encoder). Every other gradient is written
        // by one step of `backward` and read by the next, so in the order they are produced —
        // decoder second/first per level from the top, the bottom pair, then pooled/first per
        // level from the bottom — consecutive ones alternate between two scratch buffers (a
        // step never reads and writes the same one).
        var transient: [Buffer] = []
        for level in 0..<d { transient += [decoderSecond[level], decoderFirst[level]] }
        transient += [bottom[1], bottom[0]]
        for level in stride(from: d - 1, through: 0, by: -1) { transient += [pooled[level], encoderFirst[level]] }
        let scratchCount = transient.map(\.count).max()!
        gradientScratch = (.allocate(capacity: scratchCount), .allocate(capacity: scratchCount))
        gradientScratch.0.initialize(repeating: 0, count: scratchCount)
        gradientScratch.1.initialize(repeating: 0, count: scratchCount)
        for (i, buffer) in transient.enumerated() {
            buffer.shareGradient(i % 2 == 0 ? gradientScratch.0 : gradientScratch.1)
        }
        inputBuffer.shareGradient(gradientScratch.0)  // never written: the first layer has no dx

        workCount = workNeeded
        work = .allocate(capacity: workNeeded)
        work.initialize(repeating: 0, count: workNeeded)

        initialize(seed: seed)
    }

    deinit {
        work.deallocate()
        gradientScratch.0.deallocate()
        gradientScratch.1.deallocate()
    }

    /// Keras' defaults: Glorot-uniform kernels (limit sqrt(6 / (fan_in + fan_out)), fans computed
    /// from the kernel shape as Keras does: receptive field x shape[-2], receptive field x
    /// shape[-1]), zero biases. Each kernel has its own random stream (seed, layer index).
    public func initialize(seed: UInt64) {
        for (index, view) in table.enumerated() {
            if view.name == "bias" {
                for i in 0..<view.count { parameters[view.offset + i] = 0 }
                continue
            }
            let receptive = view.shape.dropLast(2).reduce(1, *)
            let fanIn = receptive * view.shape[view.shape.count - 2]
            let fanOut = receptive * view.shape[view.shape.count - 1]
            let limit = (6.0 / Double(fanIn + fanOut)).squareRoot()
            var rng = SeededGenerator(seed: seed, stream: 0x554E_4554, UInt64(index))
            for i in 0..<view.count {
                parameters[view.offset + i] = Float(rng.uniform(-limit...limit))
            }
        }
    }

    /// The input buffer, `maxBatch x rows x cols` (one channel): fill the first `batch` images
    /// before `forward(batch:)`.
    public var input: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: inputBuffer.value, count: inputBuffer.count)
    }

    /// The probabilities of the last `forward`, `maxBatch x rows x cols` (first `batch` valid).
    public var output: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: outputBuffer.value, count: outputBuffer.count)
    }

    /// Where `backward` expects dL/dprobabilities (same layout as `output`).
    public var outputGradient: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: outputBuffer.gradient, count: outputBuffer.count)
    }

    /// Seconds per kind of layer, accumulated while `profiling` is on (`unet bench` prints the
    /// shares). Concatenation costs nothing: the layers write into channel slices.
    public struct LayerTimes: Sendable {
        public var convolutionForward = 0.0
        public var convolutionBackwardData = 0.0
        public var convolutionBackwardWeights = 0.0
        public var pooling = 0.0
        public var upsampling = 0.0
        public init() {}
        public var total: Double {
            convolutionForward + convolutionBackwardData + convolutionBackwardWeights + pooling + upsampling
        }
    }

    /// Whether `forward` and `backward` time each layer into `times` (two clock reads per call).
    public var profiling = false
    public var times = LayerTimes()

    /// Whether a 3x3 convolution of `x` runs by Winograd (see `convolution`).
    @inline(__always) private func winograd(_ x: TensorView) -> Bool {
        convolution == .winograd && x.channels > 1
    }

    @inline(__always) private func timed(_ key: WritableKeyPath<LayerTimes, Double>, _ body: () -> Void) {
        guard profiling else { return body() }
        let start = monotonicSeconds()
        body()
        times[keyPath: key] += monotonicSeconds() - start
    }

    /// The forward pass of the first `batch` images of `input` into `output`.
    public func forward(batch n: Int) {
        precondition(n >= 1 && n <= maxBatch)
        let d = configuration.depth
        let nearest = configuration.upsample == .nearest
        parameters.withUnsafeBufferPointer { pb in
            let p = pb.baseAddress!
            func conv(_ x: TensorView, _ layer: Conv, _ y: TensorView) {
                timed(\.convolutionForward) {
                    if winograd(x) {
                        Winograd3x3.forward(input: x, kernel: p + layer.kernel, bias: p + layer.bias, output: y,
                                            activation: .relu, work: work, workCount: workCount)
                    } else {
                        Conv3x3.forward(input: x, kernel: p + layer.kernel, bias: p + layer.bias, output: y,
                                        activation: .relu, work: work, workCount: workCount)
                    }
                }
            }
            var x = inputBuffer.view(n)
            for level in 0..<d {
                let skip = skipView(level, n)
                conv(x, encoderConvs[level].0, encoderFirst[level].view(n))
                conv(encoderFirst[level].view(n), encoderConvs[level].1, skip)
                timed(\.pooling) { MaxPool2x2.forward(input: skip, output: pooled[level].view(n)) }
                x = pooled[level].view(n)
            }
            conv(x, bottomConvs.0, bottom[0].view(n))
            conv(bottom[0].view(n), bottomConvs.1, bottom[1].view(n))
            var below = bottom[1].view(n)
            for level in stride(from: d - 1, through: 0, by: -1) {
                let up = upView(level, n)
                timed(\.upsampling) {
                    if nearest {
                        Upsample2x.forward(input: below, output: up)
                    } else {
                        let t = upConvs[level]!
                        ConvTranspose2x2.forward(input: below, kernel: p + t.kernel, bias: p + t.bias, output: up,
                                                 work: work, workCount: workCount)
                    }
                }
                conv(concat[level].view(n), decoderConvs[level].0, decoderFirst[level].view(n))
                conv(decoderFirst[level].view(n), decoderConvs[level].1, decoderSecond[level].view(n))
                below = decoderSecond[level].view(n)
            }
            timed(\.convolutionForward) {
                Conv1x1.forward(input: below, kernel: p + finalConv.kernel, bias: p + finalConv.bias,
                                output: outputBuffer.view(n), activation: .sigmoid)
            }
        }
    }

    /// The backward pass for the last `forward(batch:)`: reads dL/dprobabilities from
    /// `outputGradient` and writes `gradients` (overwriting them).
    public func backward(batch n: Int) {
        precondition(n >= 1 && n <= maxBatch)
        let d = configuration.depth
        let nearest = configuration.upsample == .nearest
        gradients.withUnsafeMutableBufferPointer { gb in
            let g = gb.baseAddress!
            g.update(repeating: 0, count: gb.count)
            parameters.withUnsafeBufferPointer { pb in
                let p = pb.baseAddress!
                func conv(_ x: TensorView, _ dx: TensorView?, _ layer: Conv, _ y: TensorView, _ dy: TensorView) {
                    let fast = winograd(x)
                    timed(\.convolutionBackwardWeights) {
                        if fast {
                            Winograd3x3.backwardWeights(input: x, output: y, activation: .relu, dOutput: dy,
                                                        dKernel: g + layer.kernel, dBias: g + layer.bias,
                                                        work: work, workCount: workCount)
                        } else {
                            Conv3x3.backwardWeights(input: x, output: y, activation: .relu, dOutput: dy,
                                                    dKernel: g + layer.kernel, dBias: g + layer.bias,
                                                    work: work, workCount: workCount)
                        }
                    }
                    if let dx {
                        timed(\.convolutionBackwardData) {
                            if fast {
                                Winograd3x3.backwardData(kernel: p + layer.kernel, dOutput: dy, dInput: dx,
                                                         work: work, workCount: workCount)
                            } else {
                                Conv3x3.backwardData(kernel: p + layer.kernel, dOutput: dy, dInput: dx,
                                                     work: work, workCount: workCount)
                            }
                        }
                    }
                }
                let top = decoderSecond[0]
                timed(\.convolutionBackwardWeights) {
                    Conv1x1.backward(input: top.view(n), kernel: p + finalConv.kernel, output: outputBuffer.view(n),
                                     activation: .sigmoid, dOutput: outputBuffer.grad(n), dInput: top.grad(n),
                                     dKernel: g + finalConv.kernel, dBias: g + finalConv.bias)
                }
                for level in 0..<d {
                    let below = level == d - 1 ? bottom[1] : decoderSecond[level + 1]
                    conv(decoderFirst[level].view(n), decoderFirst[level].grad(n), decoderConvs[level].1,
                         decoderSecond[level].view(n), decoderSecond[level].grad(n))
                    conv(concat[level].view(n), concat[level].grad(n), decoderConvs[level].0,
                         decoderFirst[level].view(n), decoderFirst[level].grad(n))
                    timed(\.upsampling) {
                        if nearest {
                            Upsample2x.backward(dOutput: upGradient(level, n), dInput: below.grad(n))
                        } else {
                            let t = upConvs[level]!
                            ConvTranspose2x2.backward(input: below.view(n), kernel: p + t.kernel, dOutput: upGradient(level, n),
                                                      dInput: below.grad(n), dKernel: g + t.kernel, dBias: g + t.bias,
                                                      work: work, workCount: workCount)
                        }
                    }
                }
                conv(bottom[0].view(n), bottom[0].grad(n), bottomConvs.1, bottom[1].view(n), bottom[1].grad(n))
                conv(pooled[d - 1].view(n), pooled[d - 1].grad(n), bottomConvs.0, bottom[0].view(n), bottom[0].grad(n))
                for level in stride(from: d - 1, through: 0, by: -1) {
                    let skipGradient = skipGradientView(level, n)
                    timed(\.pooling) {
                        MaxPool2x2.backward(input: skipView(level, n), dOutput: pooled[level].grad(n), dInput: skipGradient)
                    }
                    conv(encoderFirst[level].view(n), encoderFirst[level].grad(n), encoderConvs[level].1,
                         skipView(level, n), skipGradient)
                    let x = level == 0 ? inputBuffer.view(n) : pooled[level - 1].view(n)
                    let dx = level == 0 ? nil : pooled[level - 1].grad(n)
                    conv(x, dx, encoderConvs[level].0, encoderFirst[level].view(n), encoderFirst[level].grad(n))
                }
            }
        }
    }

    // MARK: Concatenation slices

    private func upChannels(_ level: Int) -> Int {
        concat[level].channels - configuration.filters(level: level)
    }
    private func upView(_ level: Int, _ n: Int) -> TensorView {
        concat[level].view(n).channels(0..<upChannels(level))
    }
    private func upGradient(_ level: Int, _ n: Int) -> TensorView {
        concat[level].grad(n).channels(0..<upChannels(level))
    }
    private func skipView(_ level: Int, _ n: Int) -> TensorView {
        concat[level].view(n).channels(upChannels(level)..<concat[level].channels)
    }
    private func skipGradientView(_ level: Int, _ n: Int) -> TensorView {
        concat[level].grad(n).channels(upChannels(level)..<concat[level].channels)
    }

    // MARK: Debugging

    /// The activation of the named Keras layer for the last forward pass, NHWC, first `batch`
    /// images (for layer-by-layer comparison with Keras). Nil for layers without their own buffer.
    public func activation(of layer: String, batch n: Int) -> [Float]? {
        let specs = configuration.layers
        guard let index = specs.firstIndex(where: { $0.name == layer }) else { return nil }
        var views: [TensorView] = [inputBuffer.view(n)]
        let d = configuration.depth
        for level in 0..<d {
            views += [encoderFirst[level].view(n), skipView(level, n), pooled[level].view(n)]
        }
        views += [bottom[0].view(n), bottom[1].view(n)]
        for level in stride(from: d - 1, through: 0, by: -1) {
            views += [upView(level, n), concat[level].view(n), decoderFirst[level].view(n), decoderSecond[level].view(n)]
        }
        views.append(outputBuffer.view(n))
        precondition(views.count == specs.count)
        let v = views[index]
        var out: [Float] = []
        out.reserveCapacity(v.pixels * v.channels)
        for p in 0..<v.pixels { out.append(contentsOf: UnsafeBufferPointer(start: v.pixel(p), count: v.channels)) }
        return out
    }
}
