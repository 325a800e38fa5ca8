/// A view of a batch of images stored NHWC (channels last, as Keras) in a Float buffer the view
/// does not own.
///
/// Element (n, y, x, c) is at `base[((n * height + y) * width + x) * pixelStride + c]`. A
/// `pixelStride` larger than `channels` makes the view a channel slice of a wider tensor: this is
/// how the U-Net's concatenations cost nothing — the upsampling and the encoder's last convolution
/// of a level write straight into their slices of one buffer, which the decoder reads whole.
///
/// Why NHWC: a 3x3 convolution becomes one GEMM, `[pixels, 9 * inChannels] x [9 * inChannels,
/// outChannels]`, whose right operand is the Keras kernel `(kh, kw, in, out)` as it is stored, and
/// whose output rows are pixels, so it can write into a channel slice with `ldc = pixelStride`.
public struct TensorView: @unchecked Sendable {
    public var base: UnsafeMutablePointer<Float>
    public var batch: Int
    public var height: Int
    public var width: Int
    public var channels: Int
    public var pixelStride: Int

    public init(base: UnsafeMutablePointer<Float>, batch: Int, height: Int, width: Int,
                channels: Int, pixelStride: Int? = nil) {
        self.base = base
        self.batch = batch
        self.height = height
        self.width = width
        self.channels = channels
        self.pixelStride = pixelStride ?? channels
        precondition(self.pixelStride >= channels, "pixel stride smaller than the channel count")
    }

    /// Pixels in the batch (`batch * height * width`): the rows of the convolution GEMMs.
    @inlinable public var pixels: Int { batch * height * width }

    /// Whether the channels of consecutive pixels are adjacent (no gaps).
    @inlinable public var isContiguous: Bool { pixelStride == channels }

    /// Pointer to pixel `p` (counted over the whole batch).
    @inlinable public func pixel(_ p: Int) -> UnsafeMutablePointer<Float> { base + p * pixelStride }

    /// The view of channels `range` of this view (same pixels).
    public func channels(_ range: Range<Int>) -> TensorView {
        precondition(range.lowerBound >= 0 && range.upperBound <= channels)
        return TensorView(base: base + range.lowerBound, batch: batch, height: height, width: width,
                          channels: range.count, pixelStride: pixelStride)
    }

    /// The view of images `range` of the batch.
    public func images(_ range: Range<Int>) -> TensorView {
        precondition(range.lowerBound >= 0 && range.upperBound <= batch)
        return TensorView(base: base + range.lowerBound * height * width * pixelStride, batch: range.count,
                          height: height, width: width, channels: channels, pixelStride: pixelStride)
    }

    /// Sets every element of the view (not the gaps between slices) to `value`.
    public func fill(_ value: Float) {
        if isContiguous {
            base.update(repeating: value, count: pixels * channels)
            return
        }
        for p in 0..<pixels { (base + p * pixelStride).update(repeating: value, count: channels) }
    }
}

/// The activation fused into a layer's forward pass (and undone in its backward pass, from the
/// layer's output).
public enum Activation: Sendable {
    case linear, relu, sigmoid

    /// Applies the activation in place to `view`.
    func apply(_ view: TensorView) {
        switch self {
        case .linear: return
        case .relu:
            for p in 0..<view.pixels {
                let row = view.pixel(p)
                for c in 0..<view.channels { row[c] = Swift.max(row[c], 0) }  // branchless: vectorises
            }
        case .sigmoid:
            for p in 0..<view.pixels {
                let row = view.pixel(p)
                for c in 0..<view.channels { row[c] = logistic(row[c]) }
            }
        }
    }

    /// Turns the gradient with respect to the output `y` into the gradient with respect to the
    /// pre-activation, in place: relu passes it where y > 0; sigmoid multiplies by y (1 - y).
    func backward(output y: TensorView, gradient dy: TensorView) {
        switch self {
        case .linear: return
        case .relu:
            for p in 0..<y.pixels { reluMask(dy.pixel(p), by: y.pixel(p), count: y.channels) }
        case .sigmoid:
            for p in 0..<y.pixels {
                let yr = y.pixel(p), dr = dy.pixel(p)
                for c in 0..<y.channels { dr[c] *= yr[c] * (1 - yr[c]) }
            }
        }
    }
}

/// ReLU's backward pass on `count` floats: `d[i] = y[i] > 0 ? d[i] : 0` (y the ReLU's output),
/// 8 at a time (the plain loop stays scalar and branchy: the compiler cannot rule out that `d`
/// and `y` overlap).
@inline(__always) func reluMask(_ d: UnsafeMutablePointer<Float>, by y: UnsafePointer<Float>, count: Int) {
    var i = 0
    while i + 8 <= count {
        let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD8<Float>.self)
        let dv = UnsafeRawPointer(d + i).loadUnaligned(as: SIMD8<Float>.self)
        UnsafeMutableRawPointer(d + i).storeBytes(of: dv.replacing(with: 0, where: .!(yv .> 0)), as: SIMD8<Float>.self)
        i += 8
    }
    while i < count {
        d[i] = y[i] > 0 ? d[i] : 0
        i += 1
    }
}

/// The logistic function, computed without overflow for large |x|.
@inlinable public func logistic(_ x: Float) -> Float {
    if x >= 0 {
        return 1 / (1 + _exp(-x))
    }
    let e = _exp(x)
    return e / (1 + e)
}

#if canImport(Glibc)
import Glibc
@inlinable func _exp(_ x: Float) -> Float { Glibc.expf(x) }
#elseif canImport(Musl)
import Musl
@inlinable func _exp(_ x: Float) -> Float { Musl.expf(x) }
#endif

/// Adds `bias[c]` to every pixel's channel c and sums the gradient per channel, shared by layers.
enum Bias {
    static func add(_ bias: UnsafePointer<Float>, to view: TensorView) {
        for p in 0..<view.pixels {
            let row = view.pixel(p)
            for c in 0..<view.channels { row[c] += bias[c] }
        }
    }

    /// `dBias[c] += sum over pixels of d[p, c]`, summed in Double: a bias gradient adds up every
    /// pixel of the batch (160k terms at 64x80x32), which nearly cancel for the last layer.
    /// The kernel threads split the channels, so every sum is added in the same order whatever
    /// their number.
    static func accumulateGradient(_ d: TensorView, into dBias: UnsafeMutablePointer<Float>,
                                   on threads: KernelThreads) {
        let parts = min(threads.count, max(1, d.channels / 8))
        threads.forEach(parts) { part in
            let mine = KernelThreads.range(part, of: parts, count: d.channels)
            withUnsafeTemporaryAllocation(of: Double.self, capacity: mine.count) { sums in
                sums.initialize(repeating: 0)
                for p in 0..<d.pixels {
                    let row = d.pixel(p) + mine.lowerBound
                    for c in 0..<mine.count { sums[c] += Double(row[c]) }
                }
                for c in 0..<mine.count { dBias[mine.lowerBound + c] += Float(sums[c]) }
            }
        }
    }
}
