/// The fields of a .npy header dict, parsed and validated.
///
/// NumPy reads the header with `ast.literal_eval`; this parses the same Python literal syntax
/// (dicts, tuples, lists, strings, integers, floats, True/False/None) without evaluating
/// anything, then requires exactly the keys `descr`, `fortran_order` and `shape`.
struct NPYHeaderFields {
    /// Why a header is refused: the message of the `DataError`.
    struct Problem: Error {
        let message: String
    }

    let dtype: NPYDType
    let shape: [Int]

    /// Parses the header dict (the bytes after the length field): latin-1 text for versions
    /// 1.0 and 2.0, UTF-8 for 3.0.
    init(_ bytes: [UInt8], utf8: Bool) throws(Problem) {
        let text: [Unicode.Scalar]
        if utf8 {
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw Problem(message: "malformed header: not valid UTF-8")
            }
            text = Array(string.unicodeScalars)
        } else {
            text = bytes.map { Unicode.Scalar($0) }  // latin-1
        }
        var parser = PythonLiteralParser(text: text)
        let literal = try parser.parseAll()

        guard case .dict(let entries) = literal else {
            throw Problem(message: "malformed header: expected a dict, found \(literal.repr)")
        }
        var fields: [String: PythonLiteral] = [:]
        for (key, value) in entries {
            guard case .string(let name) = key else {
                throw Problem(message: "malformed header: key \(key.repr) is not a string")
            }
            guard ["descr", "fortran_order", "shape"].contains(name) else {
                throw Problem(message: "malformed header: unexpected key '\(name)'")
            }
            guard fields.updateValue(value, forKey: name) == nil else {
                throw Problem(message: "malformed header: duplicate key '\(name)'")
            }
        }
        for name in ["descr", "fortran_order", "shape"] where fields[name] == nil {
            throw Problem(message: "malformed header: missing key '\(name)'")
        }

        let supported = NPYDType.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .string(let descr)? = fields["descr"], let dtype = NPYDType(descr: descr) else {
            throw Problem(message: "unsupported dtype \(fields["descr"]?.repr ?? "")"
                + " (supported: \(supported))")
        }
        switch fields["fortran_order"] {
        case .bool(false)?: break
        case .bool(true)?:
            throw Problem(message: "fortran_order: True is not supported (only C-order arrays)")
        case let other:
            throw Problem(message: "malformed header: fortran_order is not a bool: \(other?.repr ?? "")")
        }
        guard case .tuple(let extents)? = fields["shape"] else {
            throw Problem(message: "malformed header: shape is not a tuple: \(fields["shape"]?.repr ?? "")")
        }
        var shape: [Int] = []
        for extent in extents {
            guard case .integer(let digits) = extent else {
                throw Problem(message: "malformed header: shape \(fields["shape"]?.repr ?? "")"
                    + " has a non-integer entry \(extent.repr)")
            }
            guard let value = Int(digits) else {
                throw Problem(message: "header shape \(fields["shape"]?.repr ?? "") is too large:"
                    + " dimension \(digits) does not fit a 64-bit integer")
            }
            guard value >= 0 else {
                throw Problem(message: "malformed header: shape \(fields["shape"]?.repr ?? "")"
                    + " has a negative dimension")
            }
            shape.append(value)
        }
        self.dtype = dtype
        self.shape = shape
    }
}

/// A Python literal value, as `ast.literal_eval` could return it.
indirect enum PythonLiteral {
    case string(String)
    /// Decimal digits with an optional sign (arbitrarily long, as in Python).
    case integer(String)
    case float(String)
    case bool(Bool)
    case none
    case tuple([PythonLiteral])
    case list([PythonLiteral])
    case dict([(key: PythonLiteral, value: PythonLiteral)])

    /// Python's spelling of the value (for messages).
    var repr: String {
        switch self {
        case .string(let s): "'" + s.replacingBackslashesAndQuotes() + "'"
        case .integer(let s), .float(let s): s
        case .bool(let b): b ? "True" : "False"
        case .none: "None"
        case .tuple(let items): items.count == 1
            ? "(\(items[0].repr),)" : "(" + items.map(\.repr).joined(separator: ", ") + ")"
        case .list(let items): "[" + items.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let entries):
            "{" + entries.map { "\($0.key.repr): \($0.value.repr)" }.joined(separator: ", ") + "}"
        }
    }
}

private extension String {
    func replacingBackslashesAndQuotes() -> String {
        var out = ""
        for c in self {
            if c == "\\" || c == "'" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

/// A recursive-descent parser for one Python literal followed only by whitespace.
struct PythonLiteralParser {
    let text: [Unicode.Scalar]
    private var position = 0
    /// Nesting limit, so hostile input cannot exhaust the stack.
    private static let maxDepth = 32

    init(text: [Unicode.Scalar]) {
        self.text = text
    }

    /// Parses the whole text as one literal.
    mutating func parseAll() throws(NPYHeaderFields.Problem) -> PythonLiteral {
        skipWhitespace()
        let value = try parseValue(depth: 0)
        skipWhitespace()
        guard position == text.count else { throw problem("unexpected text after the value") }
        return value
    }

    private var current: Unicode.Scalar? { position < text.count ? text[position] : nil }

    private mutating func skipWhitespace() {
        while let c = current, c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\u{0C}" {
            position += 1
        }
    }

    private func problem(_ what: String) -> NPYHeaderFields.Problem {
        var shown = String(String.UnicodeScalarView(text.prefix(160)))
        shown = shown.trimmingTrailingWhitespace()
        if text.count > 160 { shown += "..." }
        return NPYHeaderFields.Problem(
            message: "malformed header: \(what) at character \(position) of \"\(shown)\"")
    }

    private mutating func parseValue(depth: Int) throws(NPYHeaderFields.Problem) -> PythonLiteral {
        guard depth < Self.maxDepth else { throw problem("nesting too deep") }
        guard let c = current else { throw problem("unexpected end") }
        switch c {
        case "{":
            position += 1
            var entries: [(key: PythonLiteral, value: PythonLiteral)] = []
            while true {
                skipWhitespace()
                if current == "}" { position += 1; return .dict(entries) }
                let key = try parseValue(depth: depth + 1)
                skipWhitespace()
                guard current == ":" else { throw problem("expected ':'") }
                position += 1
                skipWhitespace()
                let value = try parseValue(depth: depth + 1)
                entries.append((key, value))
                skipWhitespace()
                if current == "," { position += 1; continue }
                guard current == "}" else { throw problem("expected ',' or '}'") }
            }
        case "(", "[":
            position += 1
            let close: Unicode.Scalar = c == "(" ? ")" : "]"
            var items: [PythonLiteral] = []
            var trailingComma = false
            while true {
                skipWhitespace()
                if current == close { position += 1; break }
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                trailingComma = current == ","
                if trailingComma { position += 1; continue }
                guard current == close else { throw problem("expected ',' or '\(close)'") }
            }
            if c == "[" { return .list(items) }
            // `(x)` is just x in Python; `(x,)` and `()` are tuples.
            return items.count == 1 && !trailingComma ? items[0] : .tuple(items)
        case "'", "\"":
            return .string(try parseString(quote: c))
        case "0"..."9", "-", "+":
            return try parseNumber()
        case "a"..."z", "A"..."Z", "_":
            let start = position
            while let d = current, d.properties.isAlphabetic || d == "_" || ("0"..."9").contains(d) {
                position += 1
            }
            let name = String(String.UnicodeScalarView(text[start..<position]))
            switch name {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default:
                position = start
                throw problem("unexpected name '\(name)'")
            }
        default:
            throw problem("unexpected character '\(c)'")
        }
    }

    private mutating func parseString(quote: Unicode.Scalar) throws(NPYHeaderFields.Problem) -> String {
        let start = position
        position += 1
        var value = String.UnicodeScalarView()
        while let c = current {
            position += 1
            if c == quote { return String(value) }
            if c == "\n" { break }
            if c == "\\" {
                guard let escaped = current else { break }
                position += 1
                switch escaped {
                case "\\", "'", "\"": value.append(escaped)
                case "n": value.append("\n")
                case "t": value.append("\t")
                default:
                    position -= 2
                    throw problem("unsupported escape '\\\(escaped)' in a string")
                }
                continue
            }
            value.append(c)
        }
        position = start
        throw problem("unterminated string")
    }

    private mutating func parseNumber() throws(NPYHeaderFields.Problem) -> PythonLiteral {
        let start = position
        var digits = ""
        if let sign = current, sign == "-" || sign == "+" {
            if sign == "-" { digits = "-" }
            position += 1
            skipWhitespace()  // Python accepts `- 3`
        }
        var count = 0
        while let d = current, ("0"..."9").contains(d) {
            digits.unicodeScalars.append(d)
            position += 1
            count += 1
        }
        guard count > 0 else {
            position = start
            throw problem("expected a number")
        }
        if let c = current, c == "." || c == "e" || c == "E" {
            // A float: keep its text for the message.
            while let d = current, ("0"..."9").contains(d) || "+-.eE".unicodeScalars.contains(d) {
                position += 1
            }
            return .float(String(String.UnicodeScalarView(text[start..<position])))
        }
        // Python 2 long suffix, which NumPy filters from version 1.0 and 2.0 headers.
        if current == "L" || current == "l" { position += 1 }
        // Python 3 forbids leading zeros in decimal literals (`007`), except for zero itself.
        let magnitude = digits.drop { $0 == "-" }
        if magnitude.count > 1 && magnitude.first == "0" && magnitude.contains(where: { $0 != "0" }) {
            position = start
            throw problem("leading zeros in an integer")
        }
        return .integer(digits)
    }
}

private extension String {
    func trimmingTrailingWhitespace() -> String {
        var s = Substring(self)
        while let last = s.last, last.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}
