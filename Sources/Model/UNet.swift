import Kernels
import Random

/// The U-Net: all parameters in one contiguous buffer, all gradients in another (as llm.c), a
/// table of named views into them in Keras' order, and activation buffers planned once for the
/// largest batch, so the training step allocates nothing.
///
/// Activations are NHWC. No concatenation is ever materialised: the decoder's first convolution
/// reads `[up | skip]` in place (`Kernels.Concatenation`, the upsampled tensor first, as in the
/// tutorial's `concatenate([up, conv], axis=3)`), and with nearest upsampling `up` itself is
/// never materialised either: the convolution reads the level below at half resolution, and its
/// input gradient goes back to the level below as 2x2 block sums. So a level holds, per image,
/// four tensors of its size (first conv, skip, two decoder convs) instead of seven with a
/// 3f-channel concatenation and its gradient: the pooled tensor and a transposed convolution's
/// output live in decoder buffers while those are dead (and are computed again for the backward
/// pass), and every gradient but the top level's lives where values the backward pass has
/// finished with were (the plan is in `init`).
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
    /// The threads every layer runs on; the workspace is planned for their count, and the
    /// sums split by it (so the count is part of what makes two runs bit-identical).
    public let threads: KernelThreads

    // Per-level buffers (index = level). Each `Buffer` holds an activation and its gradient.
    private var encoderFirst: [Buffer] = []   // first conv of encoder level i
    private var skip: [Buffer] = []           // second conv of encoder level i (the skip connection)
    private var up: [Buffer?] = []            // transposed convolution into level i (nil: nearest), backward pass
    private var pooled: [Buffer] = []         // pooling of level i (input of level i + 1), in decoderSecond[i]
    private var bottom: [Buffer] = []         // the two bottom convolutions
    private var decoderFirst: [Buffer] = []   // first conv of decoder level i
    private var decoderSecond: [Buffer] = []  // second conv of decoder level i (input of the next up)
    private var inputBuffer: Buffer
    private var outputBuffer: Buffer
    private var work: UnsafeMutablePointer<Float>
    private let workCount: Int
    /// A level-0 tensor's storage for the gradients that have no dead values to live in (`init`).
    private var gradientScratch: Buffer

    /// Parameter offsets of the layers, in the order `forward` uses them.
    private struct Conv { let kernel: Int, bias: Int }
    private var encoderConvs: [(Conv, Conv)] = []
    private var bottomConvs: (Conv, Conv)
    private var upConvs: [Conv?] = []
    private var decoderConvs: [(Conv, Conv)] = []
    private var finalConv: Conv

    /// An activation and its gradient, `batch x height x width x channels`. Its values live in
    /// storage of their own or in another buffer's (at times when that one's are not needed);
    /// its gradient always in other storage chosen by the plan in `init` (or its own, for the
    /// output's), so no gradient is ever allocated only to be replaced (which would count in the
    /// peak resident size).
    final class Buffer {
        let height: Int, width: Int, channels: Int
        let value: UnsafeMutablePointer<Float>
        private(set) var gradient: UnsafeMutablePointer<Float>? = nil
        private var ownsGradient = false
        private let ownsValue: Bool
        let count: Int
        init(batch: Int, height: Int, width: Int, channels: Int) {
            self.height = height
            self.width = width
            self.channels = channels
            count = batch * height * width * channels
            value = .allocate(capacity: count)
            value.initialize(repeating: 0, count: count)
            ownsValue = true
        }
        /// A tensor of this shape whose values live in `other`'s storage (at least as large).
        init(batch: Int, height: Int, width: Int, channels: Int, valuesIn other: Buffer) {
            (self.height, self.width, self.channels) = (height, width, channels)
            count = batch * height * width * channels
            precondition(count <= other.count)
            value = other.value
            ownsValue = false
        }
        /// Keeps the gradient in `other`'s value storage (at least as large), which the backward
        /// pass no longer needs by the time it writes this gradient.
        func storeGradient(in other: Buffer) {
            precondition(gradient == nil && count <= other.count)
            gradient = other.value
        }
        /// Gives the gradient storage of its own.
        func ownGradient() {
            precondition(gradient == nil)
            let own = UnsafeMutablePointer<Float>.allocate(capacity: count)
            own.initialize(repeating: 0, count: count)
            gradient = own
            ownsGradient = true
        }
        deinit {
            if ownsValue { value.deallocate() }
            if ownsGradient { gradient?.deallocate() }
        }
        func view(_ batch: Int) -> TensorView {
            TensorView(base: value, batch: batch, height: height, width: width, channels: channels)
        }
        func grad(_ batch: Int) -> TensorView {
            TensorView(base: gradient!, batch: batch, height: height, width: width, channels: channels)
        }
    }

    /// Builds the model with Keras' initialisation (Glorot-uniform kernels, zero biases) drawn from
    /// `SeededGenerator(seed)`, with buffers for batches of up to `maxBatch` images, running its
    /// layers on `threads`.
    public init(configuration: UNetConfiguration, seed: UInt64 = 0, maxBatch: Int,
                threads: KernelThreads = .one) throws {
        try configuration.validate()
        precondition(maxBatch >= 1)
        self.configuration = configuration
        self.maxBatch = maxBatch
        self.threads = threads
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
        // Workspace: the first convolution's im2col (one image per kernel thread, so that every
        // chunk holds at least an image for each thread: Kernels.Parallel splits chunks by
        // images); as much for the transposed convolutions' GEMMs; and the Winograd
        // convolutions' transformed kernels and tile blocks (their own per-thread parts).
        let imagesPerThread = min(threads.count, maxBatch)
        var workNeeded = Conv3x3.workspace(height: r, width: c, inChannels: 1, imagesPerChunk: imagesPerThread)
        func conv3x3(in ci: Int, out co: Int) {
            workNeeded = max(workNeeded, Winograd3x3.workspace(inChannels: ci, outChannels: co, threads: threads.count))
        }
        let transpose = configuration.upsample == .transpose
        for level in 0..<d {
            let (h, w, f) = (r >> level, c >> level, configuration.filters(level: level))
            let upChannels = transpose ? f : 2 * f
            encoderFirst.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            skip.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            decoderFirst.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            decoderSecond.append(Buffer(batch: maxBatch, height: h, width: w, channels: f))
            // The pooled tensor is read by the next level's first convolution only, long before
            // the decoder writes this level's second convolution: it lives in that buffer, and
            // the backward pass pools the skip connection again when it needs it.
            pooled.append(Buffer(batch: maxBatch, height: h / 2, width: w / 2, channels: f, valuesIn: decoderSecond[level]))
            if level > 0 { conv3x3(in: configuration.filters(level: level - 1), out: f) }
            conv3x3(in: f, out: f)
            conv3x3(in: upChannels + f, out: f)
            if transpose {
                workNeeded = max(workNeeded, ConvTranspose2x2.workspace(inputPixelsPerChunk: (h / 2) * (w / 2) * imagesPerThread,
                                                                        outChannels: f))
            }
        }
        let (hb, wb, fb) = (r >> d, c >> d, configuration.filters(level: d))
        bottom = [Buffer(batch: maxBatch, height: hb, width: wb, channels: fb),
                  Buffer(batch: maxBatch, height: hb, width: wb, channels: fb)]
        conv3x3(in: configuration.filters(level: d - 1), out: fb)
        conv3x3(in: fb, out: fb)

        // Gradient memory. Every gradient but the output's is kept in storage whose values the
        // backward pass has finished with when the gradient is written: a convolution's
        // backward-weights pass (which reads its input, and its output for the ReLU mask) runs
        // before its backward-data pass, so the input's gradient can go where the output's
        // values were, and so on down the network. One level-0 scratch buffer holds what has no
        // such place: the top's gradient, where every level-0 value is still needed. In the
        // order `backward` writes them (X = the scratch, or the buffer named):
        //   decoder level L, from the top: dD2[L] in X_L; dD1[L] in D2[L]; then dSkip[L] in D1[L]
        //     and the up part's gradient (nearest: the level below's, 2x2 sums) in X_L
        //     (transposed: the recomputed up values first, both in X_L; the level below's
        //     gradient, from the transposed convolution, in D2[L] = X_(L+1)); X_0 = scratch;
        //     nearest: X_L = scratch.
        //   bottom: dB1 in X_d, dB0 in B1, dPooled[d-1] in B0;
        //   encoder level L, from the bottom: dE1[L] in Skip[L], dPooled[L-1] in E1[L].
        // The transposed convolution's output lives in D2[L] in the forward pass (until the
        // second convolution overwrites it) and in X_L in the backward pass (computed again).
        gradientScratch = Buffer(batch: maxBatch, height: r, width: c, channels: configuration.filters(level: 0))
        var x = gradientScratch
        for level in 0..<d {
            let second = decoderSecond[level]
            second.storeGradient(in: x)
            decoderFirst[level].storeGradient(in: second)
            skip[level].storeGradient(in: decoderFirst[level])
            if transpose {
                let u = Buffer(batch: maxBatch, height: second.height, width: second.width, channels: second.channels,
                               valuesIn: x)
                u.storeGradient(in: x)
                up.append(u)
                x = second
            } else {
                up.append(nil)
            }
        }
        bottom[1].storeGradient(in: x)
        bottom[0].storeGradient(in: bottom[1])
        pooled[d - 1].storeGradient(in: bottom[0])
        for level in 0..<d {
            encoderFirst[level].storeGradient(in: skip[level])
            if level > 0 { pooled[level - 1].storeGradient(in: encoderFirst[level]) }
        }
        outputBuffer.ownGradient()

        workCount = workNeeded
        work = .allocate(capacity: workNeeded)
        work.initialize(repeating: 0, count: workNeeded)

        initialize(seed: seed)
    }

    deinit {
        work.deallocate()
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
        parameters.withUnsafeBufferPointer { pb in
            let p = pb.baseAddress!
            func conv(_ x: Concatenation, _ layer: Conv, _ y: TensorView) {
                timed(\.convolutionForward) {
                    Winograd3x3.forward(input: x, kernel: p + layer.kernel, bias: p + layer.bias, output: y,
                                        activation: .relu, work: work, workCount: workCount, on: threads)
                }
            }
            // The first layer has one input channel: im2col (a GEMM with k = 9; Winograd's would
            // have k = 1).
            timed(\.convolutionForward) {
                Conv3x3.forward(input: inputBuffer.view(n), kernel: p + encoderConvs[0].0.kernel,
                                bias: p + encoderConvs[0].0.bias, output: encoderFirst[0].view(n), activation: .relu,
                                work: work, workCount: workCount, on: threads)
            }
            for level in 0..<d {
                if level > 0 { conv(Concatenation(pooled[level - 1].view(n)), encoderConvs[level].0, encoderFirst[level].view(n)) }
                conv(Concatenation(encoderFirst[level].view(n)), encoderConvs[level].1, skip[level].view(n))
                timed(\.pooling) { MaxPool2x2.forward(input: skip[level].view(n), output: pooled[level].view(n), on: threads) }
            }
            conv(Concatenation(pooled[d - 1].view(n)), bottomConvs.0, bottom[0].view(n))
            conv(Concatenation(bottom[0].view(n)), bottomConvs.1, bottom[1].view(n))
            var below = bottom[1].view(n)
            for level in stride(from: d - 1, through: 0, by: -1) {
                var upView: TensorView? = nil
                if let t = upConvs[level] {
                    // In the second convolution's buffer, which overwrites it after its last read.
                    let view = decoderSecond[level].view(n)
                    timed(\.upsampling) {
                        ConvTranspose2x2.forward(input: below, kernel: p + t.kernel, bias: p + t.bias,
                                                 output: view, work: work, workCount: workCount, on: threads)
                    }
                    upView = view
                }
                conv(concatenation(level, up: upView, below: below, n), decoderConvs[level].0, decoderFirst[level].view(n))
                conv(Concatenation(decoderFirst[level].view(n)), decoderConvs[level].1, decoderSecond[level].view(n))
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
        gradients.withUnsafeMutableBufferPointer { gb in
            let g = gb.baseAddress!
            g.update(repeating: 0, count: gb.count)
            parameters.withUnsafeBufferPointer { pb in
                let p = pb.baseAddress!
                func conv(_ x: Concatenation, _ dx: Concatenation?, _ layer: Conv, _ y: TensorView, _ dy: TensorView) {
                    timed(\.convolutionBackwardWeights) {
                        Winograd3x3.backwardWeights(input: x, output: y, activation: .relu, dOutput: dy,
                                                    dKernel: g + layer.kernel, dBias: g + layer.bias,
                                                    work: work, workCount: workCount, on: threads)
                    }
                    if let dx {
                        timed(\.convolutionBackwardData) {
                            Winograd3x3.backwardData(kernel: p + layer.kernel, dOutput: dy, dInput: dx,
                                                     work: work, workCount: workCount, on: threads)
                        }
                    }
                }
                func conv(_ x: Buffer, _ layer: Conv, _ y: Buffer, dx: Buffer?) {
                    conv(Concatenation(x.view(n)), dx.map { Concatenation($0.grad(n)) }, layer, y.view(n), y.grad(n))
                }
                let top = decoderSecond[0]
                timed(\.convolutionBackwardWeights) {
                    Conv1x1.backward(input: top.view(n), kernel: p + finalConv.kernel, output: outputBuffer.view(n),
                                     activation: .sigmoid, dOutput: outputBuffer.grad(n), dInput: top.grad(n),
                                     dKernel: g + finalConv.kernel, dBias: g + finalConv.bias, on: threads)
                }
                for level in 0..<d {
                    let below = level == d - 1 ? bottom[1] : decoderSecond[level + 1]
                    conv(decoderFirst[level], decoderConvs[level].1, decoderSecond[level], dx: decoderFirst[level])
                    if let t = upConvs[level], let upBuffer = up[level] {
                        // The transposed convolution's output again, where the second
                        // convolution's output gradient was (read for the last time just now).
                        timed(\.upsampling) {
                            ConvTranspose2x2.forward(input: below.view(n), kernel: p + t.kernel, bias: p + t.bias,
                                                     output: upBuffer.view(n), work: work, workCount: workCount, on: threads)
                        }
                    }
                    // Into [up | skip]: with nearest upsampling, the up part's gradient lands in
                    // the level below as 2x2 block sums (the upsampling's backward pass).
                    conv(concatenation(level, up: up[level]?.view(n), below: below.view(n), n),
                         concatenationGradient(level, below: below, n),
                         decoderConvs[level].0, decoderFirst[level].view(n), decoderFirst[level].grad(n))
                    if let t = upConvs[level], let upBuffer = up[level] {
                        timed(\.upsampling) {
                            ConvTranspose2x2.backward(input: below.view(n), kernel: p + t.kernel, dOutput: upBuffer.grad(n),
                                                      dInput: below.grad(n), dKernel: g + t.kernel, dBias: g + t.bias,
                                                      work: work, workCount: workCount, on: threads)
                        }
                    }
                }
                // The pooled tensors were overwritten by the decoder (see `pooled`): pooled again
                // just before the convolution that reads them, into storage dead by then.
                func pool(_ level: Int) {
                    timed(\.pooling) { MaxPool2x2.forward(input: skip[level].view(n), output: pooled[level].view(n), on: threads) }
                }
                conv(bottom[0], bottomConvs.1, bottom[1], dx: bottom[0])
                pool(d - 1)
                conv(pooled[d - 1], bottomConvs.0, bottom[0], dx: pooled[d - 1])
                for level in stride(from: d - 1, through: 0, by: -1) {
                    timed(\.pooling) {
                        MaxPool2x2.backward(input: skip[level].view(n), dOutput: pooled[level].grad(n),
                                            dInput: skip[level].grad(n), on: threads)
                    }
                    conv(encoderFirst[level], encoderConvs[level].1, skip[level], dx: encoderFirst[level])
                    if level > 0 {
                        pool(level - 1)
                        conv(pooled[level - 1], encoderConvs[level].0, encoderFirst[level], dx: pooled[level - 1])
                    } else {
                        timed(\.convolutionBackwardWeights) {
                            Conv3x3.backwardWeights(input: inputBuffer.view(n), output: encoderFirst[0].view(n),
                                                    activation: .relu, dOutput: encoderFirst[0].grad(n),
                                                    dKernel: g + encoderConvs[0].0.kernel, dBias: g + encoderConvs[0].0.bias,
                                                    work: work, workCount: workCount, on: threads)
                        }
                    }
                }
            }
        }
    }

    // MARK: Concatenations

    /// The decoder's first input at `level`: `[up | skip]`, `up` the level below read upsampled
    /// (nearest) or the transposed convolution's output.
    private func concatenation(_ level: Int, up upView: TensorView?, below: TensorView, _ n: Int) -> Concatenation {
        if let upView {
            return Concatenation(upView, upsampled: false, skip[level].view(n))
        }
        return Concatenation(below, upsampled: true, skip[level].view(n))
    }

    /// Where that input's gradient goes: the up part's to the level below (nearest) or to the
    /// transposed convolution's output, the skip part's to the skip connection's gradient.
    private func concatenationGradient(_ level: Int, below: Buffer, _ n: Int) -> Concatenation {
        if let upBuffer = up[level] {
            return Concatenation(upBuffer.grad(n), upsampled: false, skip[level].grad(n))
        }
        return Concatenation(below.grad(n), upsampled: true, skip[level].grad(n))
    }

    // MARK: Debugging

    /// The activation of the named Keras layer for the last forward pass, NHWC, first `batch`
    /// images (for layer-by-layer comparison with Keras); the upsampling and concatenation
    /// layers, which have no buffer of their own, are assembled from their parts, and the
    /// tensors the decoder overwrote (pooled, transposed convolutions) are computed again from
    /// their inputs. Valid after `forward`, not after `backward` (which reuses the buffers).
    public func activation(of layer: String, batch n: Int) -> [Float]? {
        let specs = configuration.layers
        guard let index = specs.firstIndex(where: { $0.name == layer }) else { return nil }
        var recomputed: [UnsafeMutablePointer<Float>] = []
        defer { for r in recomputed { r.deallocate() } }
        func fresh(like b: Buffer) -> TensorView {
            let values = UnsafeMutablePointer<Float>.allocate(capacity: b.count)
            recomputed.append(values)
            return TensorView(base: values, batch: n, height: b.height, width: b.width, channels: b.channels)
        }
        var tensors: [Concatenation] = [Concatenation(inputBuffer.view(n))]
        let d = configuration.depth
        for level in 0..<d {
            let pooledView = fresh(like: pooled[level])
            MaxPool2x2.forward(input: skip[level].view(n), output: pooledView, on: threads)
            tensors += [encoderFirst[level].view(n), skip[level].view(n), pooledView].map { Concatenation($0) }
        }
        tensors += [Concatenation(bottom[0].view(n)), Concatenation(bottom[1].view(n))]
        for level in stride(from: d - 1, through: 0, by: -1) {
            let below = level == d - 1 ? bottom[1].view(n) : decoderSecond[level + 1].view(n)
            var upView: TensorView? = nil
            if let t = upConvs[level] {
                let view = fresh(like: decoderSecond[level])
                parameters.withUnsafeBufferPointer { p in
                    ConvTranspose2x2.forward(input: below, kernel: p.baseAddress! + t.kernel, bias: p.baseAddress! + t.bias,
                                             output: view, work: work, workCount: workCount, on: threads)
                }
                upView = view
            }
            let whole = concatenation(level, up: upView, below: below, n)  // also the up layer: its first part
            tensors += [whole, whole, Concatenation(decoderFirst[level].view(n)), Concatenation(decoderSecond[level].view(n))]
        }
        tensors.append(Concatenation(outputBuffer.view(n)))
        precondition(tensors.count == specs.count)
        let t = tensors[index]
        // The up layer is the first part of its concatenation alone.
        let onlyFirst = specs[index].kind == .upsample || specs[index].kind == .convTranspose
        var out: [Float] = []
        out.reserveCapacity(t.batch * t.height * t.width * t.channels)
        for s in 0..<t.batch {
            for y in 0..<t.height {
                for x in 0..<t.width {
                    let q = t.firstUpsampled ? (s * t.first.height + y / 2) * t.first.width + x / 2
                                             : (s * t.height + y) * t.width + x
                    out.append(contentsOf: UnsafeBufferPointer(start: t.first.pixel(q), count: t.first.channels))
                    if let second = t.second, !onlyFirst {
                        out.append(contentsOf: UnsafeBufferPointer(start: second.pixel((s * t.height + y) * t.width + x),
                                                                   count: second.channels))
                    }
                }
            }
        }
        return out
    }
}
