// A small, portable, seedable pseudo-random number generator.
//
// xoshiro256** (Blackman & Vigna) seeded through SplitMix64. Everything here is integer arithmetic
// plus correctly rounded IEEE operations, so a given seed yields the same stream on every platform
// and Swift version (unlike `SystemRandomNumberGenerator`, or `Float.random(in:)` without a generator).

/// A deterministic xoshiro256** generator, seeded through SplitMix64.
///
/// Use `init(seed:stream:)` to derive independent streams from a seed and a path of integers
/// (for instance `(seed, domain, subject, index)`), so that every item can be generated on its own,
/// in any order or in parallel, and still be reproduced bit for bit.
///
/// It conforms to `RandomNumberGenerator`, so it can drive the standard library's
/// `shuffle(using:)` and `Int.random(in:using:)` as well.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// A generator for `seed`: the 256-bit state is filled by SplitMix64 started at `seed`.
    public init(seed: UInt64) {
        var sm = seed
        s0 = SeededGenerator.splitMix64(&sm)
        s1 = SeededGenerator.splitMix64(&sm)
        s2 = SeededGenerator.splitMix64(&sm)
        s3 = SeededGenerator.splitMix64(&sm)
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }  // the all-zero state is a fixed point
    }

    /// A generator for the sub-stream of `seed` named by `stream` (for example a domain tag, a
    /// subject and an image index). Different paths give statistically independent streams.
    public init(seed: UInt64, stream: UInt64...) {
        self.init(seed: seed, path: stream)
    }

    /// Same as `init(seed:stream:)`, with the path as an array.
    public init(seed: UInt64, path: [UInt64]) {
        var h = SeededGenerator.mix64(seed ^ 0x6A09_E667_F3BC_C908)
        for (i, c) in path.enumerated() {
            h = SeededGenerator.mix64(h ^ SeededGenerator.mix64(c &+ UInt64(i + 1) &* 0x9E37_79B9_7F4A_7C15))
        }
        self.init(seed: h)
    }

    /// The next 64 random bits (xoshiro256**).
    @inlinable public mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// A uniform `Double` in [0, 1) with 53 random bits.
    @inlinable public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A uniform `Float` in [0, 1) with 24 random bits.
    @inlinable public mutating func nextFloat() -> Float {
        Float(next() >> 40) * 0x1.0p-24
    }

    /// A uniform `Double` in `range` (the upper bound is reached only through rounding).
    @inlinable public mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * nextDouble()
    }

    /// A uniform integer in `range`, without modulo bias (Lemire's multiply-and-reject).
    @inlinable public mutating func int(in range: ClosedRange<Int>) -> Int {
        let span = UInt64(bitPattern: Int64(range.upperBound) &- Int64(range.lowerBound)) &+ 1
        if span == 0 { return Int(truncatingIfNeeded: next()) }  // the full 64-bit range
        var m = next().multipliedFullWidth(by: span)
        if m.low < span {
            let threshold = (0 &- span) % span
            while m.low < threshold { m = next().multipliedFullWidth(by: span) }
        }
        return range.lowerBound &+ Int(truncatingIfNeeded: m.high)
    }

    /// `true` with probability `p`.
    @inlinable public mutating func bernoulli(_ p: Double) -> Bool {
        nextDouble() < p
    }

    /// A normal deviate (Box-Muller with the portable `PortableMath` functions, so it is
    /// bit-reproducible across platforms). The second deviate of the pair is discarded.
    @inlinable public mutating func normal(mean: Double = 0, standardDeviation: Double = 1) -> Double {
        let u1 = 1.0 - nextDouble()  // (0, 1]: the logarithm stays finite
        let u2 = nextDouble()
        let r = (-2.0 * PortableMath.log(u1)).squareRoot()
        return mean + standardDeviation * r * PortableMath.cos(2.0 * Double.pi * u2)
    }

    @usableFromInline @inline(__always) func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }

    /// SplitMix64 step: advances `state` and returns the next output.
    static func splitMix64(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix64(state)
    }

    /// The SplitMix64 finaliser, a good 64-bit mixing function.
    static func mix64(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
