/// Kaggle's run-length encoding of a binary mask, as the "Ultrasound Nerve Segmentation"
/// competition reads it (the tutorial's `run_length_enc`).
///
/// Pixels are numbered **column-major** from 1: down the first column, then down the second, and so
/// on (the image transposed, then flattened: pixel (row, col) is number `col * height + row + 1`).
/// A mask is the space-separated pairs `start length` of its runs of consecutive set pixels, in
/// increasing order; a run continues from the bottom of one column to the top of the next.
public enum RunLength {
    /// Encodes a `height x width` mask stored row-major (`mask[row * width + col]`; any non-zero
    /// value is set).
    ///
    /// Returns the `start length` pairs joined by single spaces, or `""` when fewer than
    /// `minPixels` pixels are set (the tutorial treats masks under 10 pixels as empty) or none is.
    /// This is exactly the tutorial's `run_length_enc(label)` with `len(y) < minPixels`.
    /// - Precondition: `mask.count == height * width`, `height, width >= 0`.
    public static func encode(mask: UnsafeBufferPointer<UInt8>, height: Int, width: Int, minPixels: Int) -> String {
        precondition(height >= 0 && width >= 0 && mask.count == height * width,
                     "RunLength.encode: \(mask.count) mask values for a \(height)x\(width) image")
        var set = 0
        for value in mask where value != 0 { set += 1 }
        guard set > 0, set >= minPixels else { return "" }

        var text: [UInt8] = []
        text.reserveCapacity(256)
        var runStart = -1  // 0-based column-major index of the open run, -1 when none
        var index = 0
        for col in 0..<width {
            var offset = col
            for _ in 0..<height {
                if mask[offset] != 0 {
                    if runStart < 0 { runStart = index }
                } else if runStart >= 0 {
                    appendRun(start: runStart, end: index, to: &text)
                    runStart = -1
                }
                offset += width
                index += 1
            }
        }
        if runStart >= 0 { appendRun(start: runStart, end: index, to: &text) }
        return String(decoding: text, as: UTF8.self)
    }

    /// Encodes a row-major `height x width` mask held in an array; see the buffer version.
    public static func encode(mask: [UInt8], height: Int, width: Int, minPixels: Int) -> String {
        mask.withUnsafeBufferPointer { encode(mask: $0, height: height, width: width, minPixels: minPixels) }
    }

    /// Decodes a run-length string into a row-major `height x width` mask of 0 and 1, the layout
    /// `encode` takes; `""` (or only spaces) is the empty mask.
    ///
    /// Strict, as Kaggle's scorer: values are separated by spaces (or tabs); each must be a
    /// positive decimal integer (digits only); they must come in `start length` pairs; every run
    /// must lie within the image; runs must be in increasing order and must not overlap (runs
    /// that touch are accepted). Anything else throws a `RunLengthError` saying which run.
    public static func decode(_ string: String, height: Int, width: Int) throws -> [UInt8] {
        precondition(height >= 0 && width >= 0, "RunLength.decode: a \(height)x\(width) image")
        let total = height * width
        var values: [Int] = []
        var utf8 = Array(string.utf8)
        if utf8.last == UInt8(ascii: "\r") { utf8.removeLast() }  // a CRLF line, split at the LF
        var position = 0
        while position < utf8.count {
            let byte = utf8[position]
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { position += 1; continue }
            let start = position
            while position < utf8.count, utf8[position] != UInt8(ascii: " "), utf8[position] != UInt8(ascii: "\t") {
                position += 1
            }
            let token = utf8[start..<position]
            let name = "value \(values.count + 1) \"\(String(decoding: token, as: UTF8.self))\""
            var value = 0
            for digit in token {
                guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "9") else {
                    throw RunLengthError("\(name) is not a positive integer")
                }
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(digit - UInt8(ascii: "0")))
                guard !o1, !o2 else { throw RunLengthError("\(name) is too large") }
                value = sum
            }
            guard value > 0 else {
                throw RunLengthError("\(name) is zero: starts are 1-indexed and lengths positive")
            }
            values.append(value)
        }
        guard values.count % 2 == 0 else {
            throw RunLengthError("odd number of values (\(values.count)): expected start length pairs")
        }

        var mask = [UInt8](repeating: 0, count: total)
        var previousEnd = 0  // 1-based last pixel of the previous run, 0 before the first
        try mask.withUnsafeMutableBufferPointer { m in
            for pair in 0..<(values.count / 2) {
                let start = values[2 * pair], length = values[2 * pair + 1]
                let run = "run \(pair + 1) (start \(start), length \(length))"
                guard start <= total, length <= total - start + 1 else {
                    throw RunLengthError("\(run) goes past the last pixel \(total) of a \(height)x\(width) image")
                }
                guard start > previousEnd else {
                    throw RunLengthError("\(run) does not start after run \(pair) ends at pixel \(previousEnd):"
                        + " runs must be in increasing order and must not overlap")
                }
                let end = start + length - 1
                for index in (start - 1)..<end {
                    let col = index / height, row = index - col * height
                    m[row * width + col] = 1
                }
                previousEnd = end
            }
        }
        return mask
    }
}

/// A run-length string that `RunLength.decode` refuses, with the reason.
public struct RunLengthError: Error, CustomStringConvertible, Equatable, Sendable {
    /// What is wrong, naming the value or run.
    public let message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}

/// Appends `start+1 length` (for the half-open 0-based run `start..<end`), space-separated from
/// what is already there.
@inline(__always)
private func appendRun(start: Int, end: Int, to text: inout [UInt8]) {
    if !text.isEmpty { text.append(UInt8(ascii: " ")) }
    appendDecimal(start + 1, to: &text)
    text.append(UInt8(ascii: " "))
    appendDecimal(end - start, to: &text)
}

/// Appends the decimal digits of a non-negative `value`.
@inline(__always)
func appendDecimal(_ value: Int, to text: inout [UInt8]) {
    precondition(value >= 0)
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var count = 0
    var rest = value
    withUnsafeMutableBytes(of: &digits) { d in
        repeat {
            d[count] = UInt8(ascii: "0") + UInt8(rest % 10)
            rest /= 10
            count += 1
        } while rest > 0
        for i in stride(from: count - 1, through: 0, by: -1) { text.append(d[i]) }
    }
}
