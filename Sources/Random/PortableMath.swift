// Elementary functions built only from +, -, *, / and sqrt (all correctly rounded in IEEE 754),
// so that results, and therefore generated images, are bit-identical on every platform. The
// system libm (glibc, Apple's libm, ...) may differ in the last bit, which can flip a pixel value.
// Accuracy is about 1e-11 or better over the ranges used here, far more than an 8-bit image needs.

/// Portable, bit-reproducible `exp`, `log`, `sin` and `cos` in `Double`.
public enum PortableMath {
    @usableFromInline static let ln2Hi = 6.93147180369123816490e-01
    @usableFromInline static let ln2Lo = 1.90821492927058770002e-10
    @usableFromInline static let invLn2 = 1.44269504088896338700e+00
    @usableFromInline static let twoPiHi = 6.28318530717958623200e+00
    @usableFromInline static let twoPiLo = 2.44929359829470635445e-16
    @usableFromInline static let halfPi = 1.57079632679489655800e+00
    @usableFromInline static let invHalfPi = 6.36619772367581382433e-01

    /// e^x. Returns 0 below -708 and +infinity above 709.
    @inlinable @inline(__always) public static func exp(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x < -708 { return 0 }
        if x > 709 { return .infinity }
        let k = roundHalfAway(x * invLn2)
        let r = (x - k * ln2Hi) - k * ln2Lo  // |r| <= ln2 / 2
        // Taylor series to degree 12 (error < 2e-16 on |r| <= 0.35), Horner form.
        var p = 1.0 / 479_001_600.0
        p = p * r + 1.0 / 39_916_800.0
        p = p * r + 1.0 / 3_628_800.0
        p = p * r + 1.0 / 362_880.0
        p = p * r + 1.0 / 40_320.0
        p = p * r + 1.0 / 5_040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        return p * Double(sign: .plus, exponent: Int(k), significand: 1.0)
    }

    /// Natural logarithm. Returns -infinity at 0 and NaN for negative arguments.
    @inlinable @inline(__always) public static func log(_ x: Double) -> Double {
        if x.isNaN || x < 0 { return .nan }
        if x == 0 { return -.infinity }
        if x.isInfinite { return x }
        if x < 0x1p-1022 { return log(x * 0x1p54) - 54 * 0.693_147_180_559_945_3 }  // subnormal
        let bits = x.bitPattern  // x = m 2^e with m in [1, 2), read from the bits (fast, exact)
        var e = Double(Int((bits >> 52) & 0x7FF) - 1023)
        var m = Double(bitPattern: (bits & 0x000F_FFFF_FFFF_FFFF) | 0x3FF0_0000_0000_0000)
        if m > 1.4142135623730951 { m *= 0.5; e += 1 }
        // ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716.
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        var p = 1.0 / 13.0  // truncation error below 2e-11 (absolute) for |s| <= 0.1716
        p = p * s2 + 1.0 / 11.0
        p = p * s2 + 1.0 / 9.0
        p = p * s2 + 1.0 / 7.0
        p = p * s2 + 1.0 / 5.0
        p = p * s2 + 1.0 / 3.0
        p = p * s2 + 1.0
        return e * ln2Hi + (e * ln2Lo + 2 * s * p)
    }

    /// sin(x) and cos(x) together, for |x| up to about 1e6.
    public static func sinCos(_ x: Double) -> (sin: Double, cos: Double) {
        let k = roundHalfAway(x * (1.0 / twoPiHi))
        let r = (x - k * twoPiHi) - k * twoPiLo  // [-pi, pi]
        let q = roundHalfAway(r * invHalfPi)     // quadrant -2...2
        let t = r - q * halfPi                   // [-pi/4, pi/4]
        let t2 = t * t
        var s = -1.0 / 1_307_674_368_000.0        // -1/15!
        s = s * t2 + 1.0 / 6_227_020_800.0
        s = s * t2 - 1.0 / 39_916_800.0
        s = s * t2 + 1.0 / 362_880.0
        s = s * t2 - 1.0 / 5_040.0
        s = s * t2 + 1.0 / 120.0
        s = s * t2 - 1.0 / 6.0
        s = t + t * t2 * s
        var c = 1.0 / 87_178_291_200.0             // 1/14!
        c = c * t2 - 1.0 / 479_001_600.0
        c = c * t2 + 1.0 / 3_628_800.0
        c = c * t2 - 1.0 / 40_320.0
        c = c * t2 + 1.0 / 720.0
        c = c * t2 - 1.0 / 24.0
        c = c * t2 + 0.5
        c = 1.0 - t2 * c
        switch Int(q) & 3 {
        case 0: return (s, c)
        case 1: return (c, -s)
        case 2: return (-s, -c)
        default: return (-c, s)
        }
    }

    /// Nearest integer, halves away from zero, for |x| < 2^52 (cheaper than `rounded()`, which
    /// calls into libm).
    @inlinable @inline(__always) public static func roundHalfAway(_ x: Double) -> Double {
        let t = Double(Int64(x))  // truncation towards zero
        let f = x - t             // exact
        return f >= 0.5 ? t + 1 : (f <= -0.5 ? t - 1 : t)
    }

    public static func sin(_ x: Double) -> Double { sinCos(x).sin }
    public static func cos(_ x: Double) -> Double { sinCos(x).cos }
}
