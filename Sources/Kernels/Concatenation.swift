/// The input of a convolution as one tensor, or as the concatenation along channels of two read
/// in place (the U-Net decoder's `concatenate([up, skip])` without a copy), the first of which
/// may be read 2x nearest-upsampled (`UpSampling2D`, without materialising it: pixel (y, x) of
/// the first part is pixel (y / 2, x / 2) of its view). For gradients, the same parts receive
/// the gradients of the same tensors (see `Winograd3x3.backwardData`).
public struct Concatenation: Sendable {
    public let first: TensorView
    public let firstUpsampled: Bool
    public let second: TensorView?

    public init(_ view: TensorView) {
        first = view
        firstUpsampled = false
        second = nil
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
    }

    var parts: Int { second == nil ? 1 : 2 }
    public var channels: Int { first.channels + (second?.channels ?? 0) }
    public var batch: Int { first.batch }
    public var height: Int { second?.height ?? first.height }
    public var width: Int { second?.width ?? first.width }
}
