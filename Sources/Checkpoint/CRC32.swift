/// CRC-32 as zlib, PNG, gzip and Python's `zlib.crc32` compute it (ISO-HDLC: reflected
/// polynomial 0xEDB88320, initial value and final XOR 0xFFFFFFFF), so a checkpoint's checksum can
/// be checked with the Python standard library alone. Slicing-by-8: eight bytes per step through
/// eight 256-entry tables (about 1 byte per cycle; well under 0.1 s for a 94 MB checkpoint in a
/// release build).
///
///     var crc = CRC32()
///     crc.update(bytes)          // any number of times
///     crc.value                  // CRC32.checksum("123456789") == 0xCBF43926
struct CRC32 {
    private var state: UInt32 = 0xFFFF_FFFF

    init() {}

    /// The CRC-32 of everything passed to `update` so far.
    var value: UInt32 { ~state }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var p = bytes.baseAddress, bytes.count > 0 else { return }
        var n = bytes.count
        var crc = state
        Self.tables.withUnsafeBufferPointer { t in
            while n >= 8 {
                let word = UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))
                let lo = UInt32(truncatingIfNeeded: word) ^ crc
                let hi = UInt32(truncatingIfNeeded: word >> 32)
                crc = t[7 &* 256 &+ Int(lo & 0xff)] ^ t[6 &* 256 &+ Int((lo >> 8) & 0xff)]
                    ^ t[5 &* 256 &+ Int((lo >> 16) & 0xff)] ^ t[4 &* 256 &+ Int(lo >> 24)]
                    ^ t[3 &* 256 &+ Int(hi & 0xff)] ^ t[2 &* 256 &+ Int((hi >> 8) & 0xff)]
                    ^ t[256 &+ Int((hi >> 16) & 0xff)] ^ t[Int(hi >> 24)]
                p += 8
                n -= 8
            }
            while n > 0 {
                crc = t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xff)] ^ (crc >> 8)
                p += 1
                n -= 1
            }
        }
        state = crc
    }

    /// The CRC-32 of `bytes`.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.value
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 { bytes.withUnsafeBytes { checksum($0) } }

    static func checksum(_ text: String) -> UInt32 { checksum(Array(text.utf8)) }

    /// Table k maps a byte to its CRC contribution k bytes further on: table 0 is the classic
    /// byte-at-a-time table, table k + 1 advances table k by one zero byte.
    private static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[i] = c
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xff)]
            }
        }
        return t
    }()
}
