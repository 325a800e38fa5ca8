#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A problem with one file: printed as a single line, `<path>: <problem>`.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String

    /// Control characters in `problem` (text quoted from a damaged file, a library's message) are
    /// escaped, so the message stays one line whatever the file holds.
    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = escapingControlCharacters(problem)
    }

    public var description: String { "\(path): \(problem)" }
}

/// The text of `errno` (for messages about failed system calls).
func systemErrorText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

/// The machine's physical memory in bytes: no single array can be larger.
func physicalMemoryBytes() -> Int {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), pageSize = sysconf(Int32(_SC_PAGESIZE))
    guard pages > 0, pageSize > 0 else { return Int.max }
    return pages.multipliedReportingOverflow(by: pageSize).overflow ? Int.max : pages * pageSize
}

/// `text` with line breaks and other control characters written as escapes (`\n`, `\r`, `\t`,
/// `\x07`, `\u{2028}`), as Python's `repr` shows them: what is quoted from a file stays on one line.
func escapingControlCharacters(_ text: String) -> String {
    guard text.unicodeScalars.contains(where: isControl) else { return text }
    var out = String.UnicodeScalarView()
    for c in text.unicodeScalars {
        guard isControl(c) else { out.append(c); continue }
        let escape: String
        switch c {
        case "\n": escape = "\\n"
        case "\r": escape = "\\r"
        case "\t": escape = "\\t"
        default:
            let hex = String(c.value, radix: 16)
            escape = c.value < 0x100 ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u{\(hex)}"
        }
        out.append(contentsOf: escape.unicodeScalars)
    }
    return String(out)
}

private func isControl(_ c: Unicode.Scalar) -> Bool {
    c.value < 0x20 || (0x7F...0x9F).contains(c.value) || c.value == 0x2028 || c.value == 0x2029
}
