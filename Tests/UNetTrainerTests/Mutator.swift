import Random

/// Deterministic mutations of valid files, for the fuzz tests (FuzzTests.swift).
///
/// A case is a function of (seed, format, case index) alone: `Mutator(seed:format:index:)` gives
/// the same mutations on every run and platform (the project's `SeededGenerator`), so any failing
/// case can be reproduced by itself. Every mutation returns a short description for messages.
///
/// Generic mutations work on any bytes: bit flips, interesting byte and integer values, truncation,
/// junk appended, a range deleted or duplicated. Format-aware ones live in `NPYMutations` and
/// `TIFFMutations` below.
struct Mutator {
    var rng: SeededGenerator

    init(seed: UInt64, format: UInt64, index: Int) {
        rng = SeededGenerator(seed: seed, stream: format, UInt64(index))
    }

    /// A uniform integer in 0..<n (n > 0).
    mutating func below(_ n: Int) -> Int { rng.int(in: 0...(n - 1)) }
    mutating func chance(_ p: Double) -> Bool { rng.bernoulli(p) }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }

    static let interestingBytes: [UInt8] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE, 0x20, 0x0A]
    static let interesting16: [UInt16] = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF]
    static let interesting32: [UInt32] = [
        0, 1, 2, 3, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x10001, 1 << 24, 1 << 30,
        0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF,
    ]

    // MARK: Generic mutations

    /// Flips 1...maxBits random bits.
    mutating func flipBits(_ bytes: inout [UInt8], maxBits: Int = 8) -> String {
        guard !bytes.isEmpty else { return "no bits to flip" }
        let n = 1 + below(maxBits)
        var offsets: [Int] = []
        for _ in 0..<n {
            let offset = below(bytes.count)
            bytes[offset] ^= 1 << UInt8(below(8))
            offsets.append(offset)
        }
        return "flipped \(n) bit(s) at \(offsets.sorted())"
    }

    /// Overwrites 1...4 random bytes with interesting values (0, 0xFF, 0x7F, 0x80, ...).
    mutating func overwriteBytes(_ bytes: inout [UInt8]) -> String {
        guard !bytes.isEmpty else { return "nothing to overwrite" }
        var done: [String] = []
        for _ in 0..<(1 + below(4)) {
            let offset = below(bytes.count), value = pick(Self.interestingBytes)
            bytes[offset] = value
            done.append("[\(offset)]=\(value)")
        }
        return "overwrote " + done.joined(separator: " ")
    }

    /// Writes an interesting 16- or 32-bit integer, either byte order, at a random offset (or at
    /// `offset`).
    mutating func overwriteInteger(_ bytes: inout [UInt8], at offset: Int? = nil) -> String {
        let wide = chance(0.5)
        let size = wide ? 4 : 2
        guard bytes.count >= size else { return "too short for an integer" }
        let at = min(offset ?? below(bytes.count - size + 1), bytes.count - size)
        let value = wide ? UInt64(pick(Self.interesting32)) : UInt64(pick(Self.interesting16))
        let little = chance(0.5)
        for i in 0..<size {
            bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * (little ? i : size - 1 - i)))
        }
        return "wrote \(wide ? "u32" : "u16") \(value) (\(little ? "LE" : "BE")) at \(at)"
    }

    /// Cuts the file at a random length (often near the start, where the headers are).
    mutating func truncate(_ bytes: inout [UInt8]) -> String {
        let keep = chance(0.5) ? below(min(bytes.count, 256) + 1) : below(bytes.count + 1)
        bytes.removeSubrange(keep...)
        return "truncated to \(keep) bytes"
    }

    /// Appends 1...4096 bytes of junk (random, zeros or a repeated interesting byte).
    mutating func extend(_ bytes: inout [UInt8]) -> String {
        let n = 1 + below(chance(0.7) ? 64 : 4096)
        switch below(3) {
        case 0: bytes += (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 1: bytes += [UInt8](repeating: 0, count: n)
        default: bytes += [UInt8](repeating: pick(Self.interestingBytes), count: n)
        }
        return "appended \(n) junk bytes"
    }

    /// Deletes or duplicates a random range (shifts everything after it).
    mutating func shiftRange(_ bytes: inout [UInt8]) -> String {
        guard bytes.count > 1 else { return "too short to shift" }
        let start = below(bytes.count), length = 1 + below(min(32, bytes.count - start))
        if chance(0.5) {
            bytes.removeSubrange(start..<(start + length))
            return "deleted \(length) bytes at \(start)"
        }
        bytes.insert(contentsOf: bytes[start..<(start + length)], at: start)
        return "duplicated \(length) bytes at \(start)"
    }

    /// One to three generic mutations.
    mutating func generic(_ bytes: inout [UInt8]) -> String {
        var done: [String] = []
        for _ in 0..<(1 + below(chance(0.7) ? 1 : 3)) {
            switch below(10) {
            case 0...2: done.append(flipBits(&bytes))
            case 3...4: done.append(overwriteBytes(&bytes))
            case 5: done.append(overwriteInteger(&bytes))
            case 6...7: done.append(truncate(&bytes))
            case 8: done.append(extend(&bytes))
            default: done.append(shiftRange(&bytes))
            }
        }
        return done.joined(separator: "; ")
    }
}

// MARK: - NPY

/// Format-aware mutations of a .npy file: its header dict replaced by hostile variants, its syntax
/// garbled, its length field, version or magic changed.
enum NPYMutations {
    static let descrs = [
        "|u1", "<u1", "u1", "<i4", "<f4", "=f4", "f4", "<f8", "<i8",  // supported spellings
        ">i4", ">f4", ">f8", "|O", "<U10", "|S3", "<f2", "|b1", "?", "<c8", "<u2", "<i2", "<M8[ns]",
        "|V8", "", "'", "\\", "<f4 ", "f", "<", "<i4\u{00}", "\u{7F}",
    ]
    static let shapes = [
        "(2**62, 2**62)", "(4611686018427387904, 4611686018427387904)", "(1000000000000,)",
        "(1e12,)", "(3.5,)", "(-1,)", "(-3, 4)", "(- 3,)", "(+3,)", "(0,)", "()", "(0, 0, 0)",
        "(9223372036854775807,)", "(9223372036854775808,)", "(18446744073709551616,)",
        "(99999999999999999999999999999999999999,)", "(2147483648, 2147483648, 4)",
        "(4294967296, 4294967296)", "[3, 4]", "(3, 4", "3", "None", "(True,)", "('3',)", "(3L,)",
        "(007,)", "((3,),)", "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)",
        String(repeating: "(", count: 40) + "1" + String(repeating: ",)", count: 40),
    ]
    static let fortranValues = ["False", "True", "0", "1", "None", "'False'", "false", "Fals"]

    /// A header dict built from hostile parts; `original` supplies the valid shape and descr.
    static func hostileDict(_ m: inout Mutator, descr: String, shape: String) -> (dict: String, what: String) {
        var d = m.chance(0.4) ? m.pick(descrs) : descr
        var s = m.chance(0.6) ? m.pick(shapes) : shape
        var f = m.chance(0.2) ? m.pick(fortranValues) : "False"
        if m.chance(0.1) { d = d.uppercased() }
        if m.chance(0.05) { s = shape + String(repeating: " ", count: 70_000) }  // beyond a 1.0 header
        if m.chance(0.05) { f = "True" }
        var entries = ["'descr': '\(d)'", "'fortran_order': \(f)", "'shape': \(s)"]
        switch m.below(12) {
        case 0: entries.remove(at: m.below(entries.count))
        case 1: entries.append(m.pick(entries))  // duplicate key
        case 2: entries.append("'extra': 1")
        case 3: entries.shuffle(using: &m.rng)
        case 4: entries[0] = "'descr': \(d)"  // unquoted
        case 5: entries[0] = "\"descr\": \"\(d)\""  // double quotes (valid Python)
        default: break
        }
        let dict = "{" + entries.joined(separator: ", ") + (m.chance(0.8) ? ", }" : "}")
        return (dict, "header \(dict.count > 200 ? String(dict.prefix(200)) + "..." : dict)")
    }

    /// Wraps a dict as a .npy header of `major` version (length field, padding, newline).
    static func header(dict: String, major: UInt8) -> [UInt8] {
        var text = Array(dict.utf8) + [UInt8(ascii: "\n")]
        let prefix = major == 1 ? 10 : 12
        let padding = (64 - (prefix + text.count) % 64) % 64
        text.insert(contentsOf: [UInt8](repeating: 0x20, count: padding), at: text.count - 1)
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
        for i in 0..<(prefix - 8) { bytes.append(UInt8(truncatingIfNeeded: text.count >> (8 * i))) }
        return bytes + text
    }

    /// One format-aware mutation of `bytes`, a valid .npy file with this `descr` and `shape` text
    /// and a body of `bodyLength` bytes at its end.
    static func mutate(_ bytes: inout [UInt8], descr: String, shape: String, bodyLength: Int,
                       _ m: inout Mutator) -> String {
        let body = Array(bytes.suffix(bodyLength))
        let headerLength = bytes.count - bodyLength
        let major = bytes.count > 6 ? bytes[6] : 1
        let prefix = major == 1 ? 10 : 12
        switch m.below(8) {
        case 0...2:
            // A hostile header with the old body, no body, or a short junk body.
            let (dict, what) = hostileDict(&m, descr: descr, shape: shape)
            let version: UInt8 = m.chance(0.2) ? m.pick([1, 2, 3]) : major
            bytes = header(dict: dict, major: version)
            switch m.below(4) {
            case 0: return what + ", no body"
            case 1: bytes += (0..<m.below(64)).map { _ in UInt8(truncatingIfNeeded: m.rng.next()) }
                return what + ", junk body"
            default: bytes += body
                return what
            }
        case 3...4:
            // Garbled syntax: syntax characters deleted, inserted or replaced inside the dict.
            let syntax = Array("{}()[],:'\" \n\r\t\\-+.eL0123456789xTFN#\u{00}\u{85}".utf8)
            var edits: [String] = []
            for _ in 0..<(1 + m.below(3)) {
                let end = min(headerLength, bytes.count)  // deletions shorten the file
                guard end > prefix else { break }
                let at = prefix + m.below(end - prefix)
                switch m.below(3) {
                case 0: bytes[at] = m.pick(syntax); edits.append("set [\(at)]")
                case 1: bytes.remove(at: at); edits.append("deleted [\(at)]")
                default: bytes.insert(m.pick(syntax), at: at); edits.append("inserted at [\(at)]")
                }
            }
            if m.chance(0.5) { bytes += [0] }  // sometimes the body size is off as well
            return "garbled header: " + edits.joined(separator: ", ")
        case 5:
            // The length field: past the end, zero, shorter or longer by a little, huge.
            guard bytes.count >= prefix else { return "too short for a length field" }
            let fieldLength = headerLength - prefix
            let choices = [0, 1, fieldLength - 1, fieldLength + 1, fieldLength + 64, bytes.count, 0xFFFF, 0x1_0000,
                           1 << 20 + 1, 0x7FFF_FFFF, 0xFFFF_FFFF]
            let value = m.pick(choices)
            for i in 0..<(prefix - 8) { bytes[8 + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
            return "header length field set to \(value)"
        case 6:
            guard bytes.count >= 8 else { return "too short for a version" }
            bytes[6] = m.pick([0, 1, 2, 3, 4, 0xFF]); bytes[7] = m.chance(0.7) ? 0 : m.pick([1, 0xFF])
            return "version set to \(bytes[6]).\(bytes[7])"
        default:
            guard bytes.count >= 6 else { return "too short for a magic string" }
            let at = m.below(6)
            bytes[at] = m.pick(Mutator.interestingBytes)
            return "magic byte \(at) set to \(bytes[at])"
        }
    }
}

// MARK: - TIFF

/// Format-aware mutations of a classic TIFF: values of the tags the reader depends on (huge
/// ImageWidth/ImageLength, other bits and samples per pixel, compression schemes, strip and tile
/// offsets and byte counts out of range), entry types and counts, the IFD's offset, entry count
/// and next-IFD link.
struct TIFFMutations {
    /// The first directory of a classic (not BigTIFF) file.
    struct Layout {
        let little: Bool
        let ifdOffset: Int
        /// Offsets of the 12-byte entries, with their tag numbers.
        let entries: [(offset: Int, tag: UInt16)]

        init?(_ bytes: [UInt8]) {
            guard bytes.count >= 8 else { return nil }
            if bytes[0] == 0x49 && bytes[1] == 0x49 { little = true }
            else if bytes[0] == 0x4D && bytes[1] == 0x4D { little = false }
            else { return nil }
            let probe = Layout.read(bytes, 2, 2, little)
            guard probe == 42 else { return nil }
            ifdOffset = Layout.read(bytes, 4, 4, little)
            guard ifdOffset + 2 <= bytes.count else { return nil }
            let n = Layout.read(bytes, ifdOffset, 2, little)
            guard ifdOffset + 2 + 12 * n + 4 <= bytes.count else { return nil }
            var entries: [(Int, UInt16)] = []
            for i in 0..<n {
                let at = ifdOffset + 2 + 12 * i
                entries.append((at, UInt16(Layout.read(bytes, at, 2, little))))
            }
            self.entries = entries
        }

        static func read(_ bytes: [UInt8], _ at: Int, _ size: Int, _ little: Bool) -> Int {
            var v = 0
            for i in 0..<size { v |= Int(bytes[at + i]) << (8 * (little ? i : size - 1 - i)) }
            return v
        }

        func read(_ bytes: [UInt8], _ at: Int, _ size: Int) -> Int { Layout.read(bytes, at, size, little) }

        func write(_ bytes: inout [UInt8], _ at: Int, _ size: Int, _ value: Int) {
            guard at >= 0, at + size <= bytes.count else { return }
            for i in 0..<size {
                bytes[at + i] = UInt8(truncatingIfNeeded: value >> (8 * (little ? i : size - 1 - i)))
            }
        }

        /// The entry of `tag`, if the directory has one.
        func entry(_ tag: UInt16) -> Int? { entries.first { $0.tag == tag }?.offset }

        /// Sets a tag to one value: its type to SHORT or LONG, its count to 1.
        func set(_ bytes: inout [UInt8], entry at: Int, value: UInt32, long: Bool) {
            write(&bytes, at + 2, 2, long ? 4 : 3)
            write(&bytes, at + 4, 4, 1)
            write(&bytes, at + 8, 4, 0)
            if long { write(&bytes, at + 8, 4, Int(value)) } else { write(&bytes, at + 8, 2, Int(value & 0xFFFF)) }
        }
    }

    static let width: UInt16 = 256, length: UInt16 = 257, bitsPerSample: UInt16 = 258, compression: UInt16 = 259
    static let photometric: UInt16 = 262, stripOffsets: UInt16 = 273, samplesPerPixel: UInt16 = 277
    static let rowsPerStrip: UInt16 = 278, stripByteCounts: UInt16 = 279, planarConfig: UInt16 = 284
    static let tileWidth: UInt16 = 322, tileLength: UInt16 = 323, tileOffsets: UInt16 = 324, tileByteCounts: UInt16 = 325
    static let extraSamples: UInt16 = 338, sampleFormat: UInt16 = 339

    /// Hostile values for the tags the reader depends on.
    static let values: [UInt16: [UInt32]] = [
        width: [0, 1, 7, 65535, 65536, 65537, 1 << 20, 1 << 30, 0x7FFF_FFFF, 0xFFFF_FFFF],
        length: [0, 1, 7, 65535, 65536, 65537, 1 << 20, 1 << 30, 0x7FFF_FFFF, 0xFFFF_FFFF],
        bitsPerSample: [0, 1, 2, 4, 7, 12, 16, 24, 32, 64, 255, 65535],
        compression: [0, 1, 2, 3, 4, 5, 6, 7, 8, 32766, 32771, 32773, 32946, 34676, 34677, 34712, 34887,
                      34925, 34926, 34927, 50000, 50001, 65535],
        photometric: [0, 1, 2, 3, 4, 5, 6, 8, 9, 10, 32844, 32845, 34892, 65535],
        samplesPerPixel: [0, 2, 3, 4, 5, 255, 65535],
        rowsPerStrip: [0, 1, 2, 7, 65535, 0x7FFF_FFFF, 0xFFFF_FFFF],
        planarConfig: [0, 2, 3, 65535],
        tileWidth: [0, 1, 15, 16, 32, 65536, 1 << 30, 0xFFFF_FFFF],
        tileLength: [0, 1, 15, 16, 32, 65536, 1 << 30, 0xFFFF_FFFF],
        extraSamples: [0, 1, 2, 3],
        sampleFormat: [0, 1, 2, 3, 4, 5, 6, 65535],
    ]
    static let offsetTags: [UInt16] = [stripOffsets, stripByteCounts, tileOffsets, tileByteCounts]

    /// One format-aware mutation of `bytes` (a classic TIFF); nil when the file has no directory
    /// this can parse (then the caller uses a generic mutation).
    static func mutate(_ bytes: inout [UInt8], _ m: inout Mutator) -> String? {
        guard let layout = Layout(bytes) else { return nil }
        switch m.below(10) {
        case 0...3:
            // One value tag set to a hostile value (or added in place of another entry).
            let tag = m.pick(Array(values.keys).sorted())
            let value = m.pick(values[tag]!)
            let long = value > 0xFFFF || m.chance(0.3)
            if let at = layout.entry(tag) {
                layout.set(&bytes, entry: at, value: value, long: long)
                return "tag \(tag) set to \(value)"
            }
            guard !layout.entries.isEmpty else { return "no entry to replace" }
            let at = m.pick(layout.entries).offset
            layout.write(&bytes, at, 2, Int(tag))
            layout.set(&bytes, entry: at, value: value, long: long)
            return "entry at \(at) replaced by tag \(tag) = \(value)"
        case 4:
            // The famous one: a huge image in a small file.
            for tag in [width, length] {
                if let at = layout.entry(tag) { layout.set(&bytes, entry: at, value: m.pick([1 << 16, 1 << 20, 1 << 30, 0xFFFF_FFFF]), long: true) }
            }
            if m.chance(0.5), let at = layout.entry(rowsPerStrip) { layout.set(&bytes, entry: at, value: 0xFFFF_FFFF, long: true) }
            return "huge ImageWidth and ImageLength"
        case 5...6:
            // Strip or tile offsets and byte counts out of range: the pointer or one element.
            let present = offsetTags.compactMap { tag in layout.entry(tag).map { (tag: tag, at: $0) } }
            guard !present.isEmpty else { return nil }
            let (tag, at) = m.pick(present)
            let type = layout.read(bytes, at + 2, 2), count = layout.read(bytes, at + 4, 4)
            let size = type == 3 ? 2 : 4
            let value = m.pick([0, 1, 7, bytes.count - 1, bytes.count, bytes.count + 1, 1 << 20, 0x7FFF_FFFF, -1])
            if count == 0 || count * size <= 4 || m.chance(0.3) {
                layout.write(&bytes, at + 8, 4, value)  // the inline value, or the array's offset
                return "tag \(tag) value/offset set to \(value)"
            }
            let array = layout.read(bytes, at + 8, 4)
            let element = array + size * m.below(count)
            layout.write(&bytes, element, size, value)
            return "tag \(tag) element at \(element) set to \(value)"
        case 7:
            // An entry's type or count.
            guard !layout.entries.isEmpty else { return nil }
            let at = m.pick(layout.entries).offset
            if m.chance(0.5) {
                let type = m.below(20)
                layout.write(&bytes, at + 2, 2, type)
                return "entry at \(at) type set to \(type)"
            }
            let count = Int(m.pick(Mutator.interesting32))
            layout.write(&bytes, at + 4, 4, count)
            return "entry at \(at) count set to \(count)"
        case 8:
            // The directory's entry count or its next-IFD link (to itself, past the end, ...).
            let nextAt = layout.ifdOffset + 2 + 12 * layout.entries.count
            if m.chance(0.5) {
                let n = m.pick([0, 1, layout.entries.count - 1, layout.entries.count + 1, 0x7FFF, 0xFFFF])
                layout.write(&bytes, layout.ifdOffset, 2, n)
                return "directory entry count set to \(n)"
            }
            let next = m.pick([layout.ifdOffset, 8, bytes.count, bytes.count - 2, 0x7FFF_FFFF, 0xFFFF_FFFF])
            layout.write(&bytes, nextAt, 4, next)
            return "next directory link set to \(next)"
        default:
            // The header's first-IFD offset.
            let offset = m.pick([0, 1, 4, 8, layout.ifdOffset + 1, layout.ifdOffset - 2, bytes.count, bytes.count - 1,
                                 0x7FFF_FFFF, 0xFFFF_FFFF])
            layout.write(&bytes, 4, 4, offset)
            return "first directory offset set to \(offset)"
        }
    }
}
