/// The index of the first NaN or infinity in `values`, nil when all are finite.
///
/// One vectorised pass (x * 0 is 0 for every finite x and NaN otherwise, and NaN survives the
/// sum), then a scalar search only when something is wrong: about a millisecond for the U-Net's
/// 7.8 million gradients.
public func firstNonFinite(_ values: UnsafeBufferPointer<Float>) -> Int? {
    guard let base = values.baseAddress else { return nil }
    let n = values.count
    var acc = SIMD16<Float>()
    var i = 0
    let raw = UnsafeRawPointer(base)
    while i + 16 <= n {
        acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self) * 0
        i += 16
    }
    var tail: Float = 0
    while i < n { tail += base[i] * 0; i += 1 }
    if acc.sum() + tail == 0 { return nil }
    return values.firstIndex { !$0.isFinite }
}
