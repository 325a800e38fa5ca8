/// The input of a convolution as one tensor, or as the concatenation along channels of two read
/// in place (the U-Net decoder's `concatenate([up, skip])` without a copy), the first of which
/// may be read 2x nearest-upsampled (`UpSampling2D`, without materialising it: pixel (y, x) of
/// the first part is pixel (y / 2, x / 2) of its view). For gradients, the same parts receive
/// the gradients of the same tensors (see `Winograd3x3.backwardData`).
public struct Concatenation: Sendable {
    public let first: TensorView
    public let firstUpsampled: Bool
    public let second: TensorView?
    /// The full-resolution size (the first part's twice when it is upsampled).
    public let height: Int, width: Int

    public init(_ view: TensorView) {
        first = view
        firstUpsampled = false
        second = nil
        (height, width) = (view.height, view.width)
    }

    /// `[first | second]`, the first nearest-upsampled 2x when `upsampled`.
    public init(_ first: TensorView, upsampled: Bool, _ second: TensorView) {
        precondition(first.batch == second.batch)
        if upsampled {
            precondition(2 * first.height == second.height && 2 * first.width == second.width)
        } else {
            precondition(first.height == second.height && first.width == second.width)
        }
        self.first = first
        firstUpsampled = upsampled
        self.second = second
        (height, width) = (second.height, second.width)
    }

    private init(first: TensorView, upsampled: Bool, second: TensorView?, height: Int, width: Int) {
        (self.first, firstUpsampled, self.second, self.height, self.width) = (first, upsampled, second, height, width)
    }

    /// Channels `range` of the concatenation: a slice of either part, or of both.
    public func channels(_ range: Range<Int>) -> Concatenation {
        precondition(range.lowerBound >= 0 && range.upperBound <= channels && !range.isEmpty)
        let c1 = first.channels
        let inFirst = range.clamped(to: 0..<c1)
        let inSecond = range.clamped(to: c1..<channels)
        let secondSlice = second.flatMap { view in
            inSecond.isEmpty ? nil : view.channels((inSecond.lowerBound - c1)..<(inSecond.upperBound - c1))
        }
        if inFirst.isEmpty {
            return Concatenation(secondSlice!)
        }
        return Concatenation(first: first.channels(inFirst), upsampled: firstUpsampled, second: secondSlice,
                             height: height, width: width)
    }

    var parts: Int { second == nil ? 1 : 2 }
    public var channels: Int { first.channels + (second?.channels ?? 0) }
    public var batch: Int { first.batch }
}
