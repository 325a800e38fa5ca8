import Foundation
import Testing
@testable import DataIO

/// The .npy codec against files NumPy 2.4 wrote (Fixtures/npy, made by make_npy_fixtures.py;
/// expected values in Fixtures/npy/values.json), and against damaged copies of them.
@Suite("NPY codec")
struct NPYTests {
    // MARK: Fixtures

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/npy")

    struct Values: Decodable {
        struct Readable: Decodable {
            var file: String
            var dtype: String
            var shape: [Int]
            var version: [Int]
            var ints: [Int64]?
            var floats: [Double]?
        }
        struct Rejected: Decodable {
            var file: String
            var reason: String
        }
        struct Header: Decodable {
            var dtype: String
            var shape: [Int]?
            var rank: Int
            var version: [Int]
            var headerLength: Int
            var header: String?
        }
        var readable: [Readable]
        var rejected: [Rejected]
        var headers: [Header]
    }

    static func values() throws -> Values {
        let data = try Data(contentsOf: fixtures.appendingPathComponent("values.json"))
        return try JSONDecoder().decode(Values.self, from: data)
    }

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }

    static func bytes(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    static func version(_ pair: [Int]) -> NPYVersion? {
        guard pair.count == 2 else { return nil }
        return NPYVersion(major: UInt8(pair[0]), minor: UInt8(pair[1]))
    }

    /// A fresh temporary directory, removed when the test ends.
    final class TemporaryDirectory {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("NPYTests-\(UUID().uuidString)")
        init() throws { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
        func write(_ name: String, _ bytes: [UInt8]) throws -> String {
            let path = path(name)
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
        var contents: [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []).sorted()
        }
    }

    /// A .npy file with an arbitrary header dict text (unpadded) and body.
    static func npyBytes(dict: String, body: [UInt8] = [], major: UInt8 = 1) -> [UInt8] {
        let text = Array(dict.utf8) + [UInt8(ascii: "\n")]
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [major, 0]
        let fieldSize = major == 1 ? 2 : 4
        for i in 0..<fieldSize { bytes.append(UInt8(truncatingIfNeeded: text.count >> (8 * i))) }
        return bytes + text + body
    }

    /// Checks that `body` throws a `DataError` for `path` whose description contains `parts`.
    func expectRejection(
        _ path: String, _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () throws -> Void
    ) {
        let error = #expect(throws: DataError.self, sourceLocation: sourceLocation) { try body() }
        guard let error else { return }
        #expect(error.path == path, sourceLocation: sourceLocation)
        #expect(error.description.hasPrefix("\(path): "), sourceLocation: sourceLocation)
        for part in parts {
            #expect(error.description.contains(part), "\(error)", sourceLocation: sourceLocation)
        }
    }

    // MARK: Reading fixtures

    /// Loads `entry` as `T`, checks its values, and checks that saving it reproduces the file.
    func checkFixture<T: NPYScalar>(
        _ entry: Values.Readable, as type: T.Type, expected: [T], in temp: TemporaryDirectory
    ) throws {
        let path = Self.fixture(entry.file)
        let array = try NPY.load(path, as: T.self)
        #expect(array.shape == entry.shape, "\(entry.file)")
        #expect(array.scalars.count == expected.count, "\(entry.file)")
        #expect(array.scalars == expected, "\(entry.file)")

        // Round trip: version 1.0 fixtures through the default version choice, others explicitly.
        let version = Self.version(entry.version)
        let copy = temp.path(entry.file)
        try NPY.save(array, to: copy, version: version == .v1_0 ? nil : version)
        #expect(try Self.bytes(copy) == Self.bytes(path), "\(entry.file) is not reproduced byte for byte")
        #expect(temp.contents == [entry.file], "\(entry.file): stray files \(temp.contents)")
        try FileManager.default.removeItem(atPath: copy)
    }

    @Test func everyFixtureDecodesAndRoundTripsByteForByte() throws {
        let temp = try TemporaryDirectory()
        let values = try Self.values()
        #expect(Set(values.readable.map(\.dtype)) == Set(NPYDType.allCases.map(\.rawValue)))
        #expect(Set(values.readable.map(\.shape.count)).isSuperset(of: [0, 1, 2, 3, 4]))
        #expect(Set(values.readable.map(\.version)) == [[1, 0], [2, 0], [3, 0]])

        for entry in values.readable {
            let header = try NPY.readHeader(Self.fixture(entry.file))
            #expect(header.dtype.rawValue == entry.dtype, "\(entry.file)")
            #expect(header.shape == entry.shape, "\(entry.file)")
            #expect(header.version == Self.version(entry.version), "\(entry.file)")
            #expect(header.headerLength % 64 == 0, "\(entry.file)")
            let fileSize = try Self.bytes(Self.fixture(entry.file)).count
            #expect(header.headerLength + header.dataLength == fileSize, "\(entry.file)")

            let ints = entry.ints ?? []
            let floats = entry.floats ?? []
            switch header.dtype {
            case .uint8: try checkFixture(entry, as: UInt8.self, expected: ints.compactMap { UInt8(exactly: $0) }, in: temp)
            case .int32: try checkFixture(entry, as: Int32.self, expected: ints.compactMap { Int32(exactly: $0) }, in: temp)
            case .int64: try checkFixture(entry, as: Int64.self, expected: ints, in: temp)
            case .float32: try checkFixture(entry, as: Float.self, expected: floats.compactMap { Float(exactly: $0) }, in: temp)
            case .float64: try checkFixture(entry, as: Double.self, expected: floats, in: temp)
            }
        }
    }

    @Test func specificFixtureValues() throws {
        // Independent of values.json: a few values written by the script's code.
        let pi = try NPY.load(Self.fixture("f8_0d.npy"), as: Double.self)
        #expect(pi.shape == [] && pi.scalars == [Double.pi])
        let i4 = try NPY.load(Self.fixture("i4_2d.npy"), as: Int32.self)
        #expect(i4.shape == [3, 4] && i4.scalars.first == .min && i4.scalars.last == .max)
        let f4 = try NPY.load(Self.fixture("f4_1d.npy"), as: Float.self)
        #expect(f4.scalars[1].bitPattern == (-0.0 as Float).bitPattern)
        #expect(f4.scalars[2] == .greatestFiniteMagnitude && f4.scalars[3] == .leastNonzeroMagnitude)
        let v3 = try NPY.load(Self.fixture("i4_v3.npy"), as: Int32.self)
        #expect(v3.scalars == [-2, -1, 0, 1])
        let i8 = try NPY.load(Self.fixture("i8_1d.npy"), as: Int64.self)
        #expect(i8.scalars == [-(1 << 62), -1, 0, 1 << 40, 1 << 53])
        let empty = try NPY.load(Self.fixture("i4_empty_inner.npy"), as: Int32.self)
        #expect(empty.shape == [2, 0, 3] && empty.scalars.isEmpty)
    }

    @Test func headersMatchNumpyForShapesThatCannotShipAsFiles() throws {
        for entry in try Self.values().headers {
            let dtype = try #require(NPYDType(rawValue: entry.dtype))
            let shape = entry.shape ?? Array(repeating: 1, count: entry.rank)
            let header = try #require(NPY.encodeHeader(dtype: dtype, shape: shape))
            #expect(header.count == entry.headerLength, "rank \(entry.rank)")
            #expect(Array(header[6..<8]) == entry.version.map { UInt8($0) }, "rank \(entry.rank)")
            if let text = entry.header {
                #expect(header == text.unicodeScalars.map { UInt8($0.value) }, "rank \(entry.rank)")
            }
        }
        // The rank-22000 header does not fit format 1.0: numpy then chooses 2.0; asking for
        // 1.0 explicitly is refused.
        let long = Array(repeating: 1, count: 22000)
        #expect(NPY.encodeHeader(dtype: .uint8, shape: long, version: .v1_0) == nil)
        #expect(NPY.encodeHeader(dtype: .uint8, shape: long)?[6] == 2)
    }

    @Test func headerLayout() throws {
        let header = try #require(NPY.encodeHeader(dtype: .float32, shape: [3, 4]))
        let text = String(decoding: header[10...], as: UTF8.self)
        #expect(text.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"))
        #expect(text.hasSuffix(" \n") && header.count == 128)
        #expect(header[8] == 118 && header[9] == 0)  // 118 = 128 - 10, little-endian
        let scalar = try #require(NPY.encodeHeader(dtype: .uint8, shape: [], version: .v3_0))
        #expect(String(decoding: scalar[12...], as: UTF8.self).contains("'shape': (), }"))
        #expect(Array(scalar[6..<12]) == [3, 0, 116, 0, 0, 0])
        let vector = try #require(NPY.encodeHeader(dtype: .int64, shape: [5], version: .v2_0))
        #expect(String(decoding: vector[12...], as: UTF8.self).contains("'shape': (5,), }"))
    }

    @Test func largeRankRoundTripUsesVersion2() throws {
        let temp = try TemporaryDirectory()
        let path = temp.path("rank22000.npy")
        let array = NDArray<UInt8>(shape: Array(repeating: 1, count: 22000), scalars: [7])
        try NPY.save(array, to: path)
        let header = try NPY.readHeader(path)
        #expect(header.version == .v2_0 && header.headerLength % 64 == 0)
        #expect(try NPY.load(path, as: UInt8.self) == array)
    }

    /// An image stack read in chunks (as `unet train` and `predict` read the data) gives the
    /// stack's bytes in order, for (N, H, W) and the tutorial's (N, 1, H, W), with a last chunk
    /// shorter than the others; a file cut short fails naming it.
    @Test func imageStacksReadInChunks() throws {
        let temp = try TemporaryDirectory()
        let (n, h, w) = (7, 3, 5)
        let bytes = (0..<(n * h * w)).map { UInt8(truncatingIfNeeded: $0 * 7) }
        for shape in [[n, h, w], [n, 1, h, w]] {
            let path = temp.path("stack\(shape.count).npy")
            try NPY.save(NDArray(shape: shape, scalars: bytes), to: path)
            var read: [UInt8] = [], firsts: [Int] = []
            let stack = try NPY.forEachImageChunk(path, chunk: 3) { first, images in
                firsts.append(first)
                read += images
            }
            #expect(stack == [n, h, w] && firsts == [0, 3, 6] && read == bytes)
            #expect(try NPY.loadImageStack(path).scalars == read)
        }
        let path = temp.path("stack3.npy")
        let whole = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        let cut = try temp.write("cut.npy", Array(whole.dropLast(h * w + 1)))
        #expect(throws: DataError.self) { try NPY.forEachImageChunk(cut, chunk: 3) { _, _ in } }
    }

    @Test func lenientHeadersThatNumpyAlsoReads() throws {
        let temp = try TemporaryDirectory()
        let cases: [(String, NPYDType, [Int])] = [
            ("{\"shape\": (2,), \"descr\": \"<i4\", \"fortran_order\": False}", .int32, [2]),
            ("{'descr':'<u1','fortran_order':False,'shape':(2,)}  ", .uint8, [2]),
            ("{'descr': 'f4', 'fortran_order': False, 'shape': ( 1 , 2 ) , }", .float32, [1, 2]),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (1L,), }", .int64, [1]),
            ("{'descr': '=f8', 'fortran_order': False, 'shape': (()), }", .float64, []),
        ]
        for (index, (dict, dtype, shape)) in cases.enumerated() {
            let count = shape.reduce(1, *)
            let path = try temp.write("ok\(index).npy",
                Self.npyBytes(dict: dict, body: Array(repeating: 0, count: count * dtype.itemSize)))
            let header = try NPY.readHeader(path)
            #expect(header.dtype == dtype && header.shape == shape, "\(dict)")
        }
    }

    // MARK: Image stacks

    @Test func imageStacks() throws {
        let temp = try TemporaryDirectory()
        let n1hw = try NPY.loadImageStack(Self.fixture("u1_n1hw.npy"))
        #expect(n1hw.shape == [3, 4, 5])
        #expect(n1hw.scalars == (try NPY.load(Self.fixture("u1_n1hw.npy"), as: UInt8.self)).scalars)
        let nhw = try NPY.loadImageStack(Self.fixture("u1_nhw.npy"))
        #expect(nhw.shape == [2, 3, 4] && nhw.scalars.count == 24)

        let wrongType = Self.fixture("i4_2d.npy")
        expectRejection(wrongType, ["uint8", "found dtype <i4"]) { _ = try NPY.loadImageStack(wrongType) }
        for shape in [[2, 3], [3, 2, 4, 5], [1, 1, 1, 1, 1]] {
            let path = temp.path("stack.npy")
            try NPY.save(NDArray(shape: shape, scalars: [UInt8](repeating: 1, count: shape.reduce(1, *))), to: path)
            expectRejection(path, ["(N, H, W) or (N, 1, H, W)", "found shape \(pythonTuple(shape))"]) {
                _ = try NPY.loadImageStack(path)
            }
        }
    }

    // MARK: Rejections

    @Test func rejectedFixtures() throws {
        let expected = [
            "be_f4.npy": "unsupported dtype '>f4'", "b1.npy": "unsupported dtype '|b1'",
            "c8.npy": "unsupported dtype '<c8'", "U3.npy": "unsupported dtype '<U3'",
            "object.npy": "unsupported dtype '|O'", "fortran_f4.npy": "fortran_order: True",
        ]
        let rejected = try Self.values().rejected
        #expect(Set(rejected.map(\.file)) == Set(expected.keys))
        for entry in rejected {
            let path = Self.fixture(entry.file)
            expectRejection(path, [entry.reason, expected[entry.file] ?? "?"]) { _ = try NPY.readHeader(path) }
            expectRejection(path, [entry.reason]) { _ = try NPY.load(path, as: Float.self) }
        }
    }

    @Test func damagedFiles() throws {
        let temp = try TemporaryDirectory()
        let good = try Self.bytes(Self.fixture("i4_2d.npy"))  // (3, 4) <i4: 128 + 48 bytes
        var cases: [(name: String, bytes: [UInt8], parts: [String])] = []

        var magic = good; magic[1] = UInt8(ascii: "n")
        cases.append(("magic.npy", magic, ["not a .npy file: bad magic string", "found 93 6E 55 4D 50 59"]))
        cases.append(("png.npy", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], ["bad magic string"]))
        var version = good; version[6] = 4
        cases.append(("version.npy", version, ["unsupported .npy format version 4.0"]))
        var minor = good; minor[7] = 1
        cases.append(("minor.npy", minor, ["unsupported .npy format version 1.1"]))
        cases.append(("empty.npy", [], ["truncated header: the file has only 0 bytes"]))
        cases.append(("cut5.npy", Array(good[..<5]), ["truncated header: the file has only 5 bytes"]))
        cases.append(("cut9.npy", Array(good[..<9]), ["truncated header: the file has only 9 bytes"]))
        cases.append(("cut60.npy", Array(good[..<60]), ["truncated header: the header needs 128 bytes, the file has 60"]))
        cases.append(("body.npy", Array(good[..<148]),
                      ["truncated body: header shape (3, 4) of <i4 needs 48 bytes, file has 20"]))
        cases.append(("header-only.npy", Array(good[..<128]),
                      ["truncated body: header shape (3, 4) of <i4 needs 48 bytes, file has 0"]))
        cases.append(("trailing.npy", good + [1, 2, 3, 4],
                      ["extra trailing bytes: header shape (3, 4) of <i4 needs 48 bytes, file has 52"]))
        var fortran = good
        let falseRange = try #require(findBytes(Array("False".utf8), in: fortran))
        fortran.replaceSubrange(falseRange, with: Array("True ".utf8))
        cases.append(("fortran.npy", fortran, ["fortran_order: True is not supported"]))
        var bigEndian = good
        let descr = try #require(findBytes(Array("<i4".utf8), in: bigEndian))
        bigEndian[descr.lowerBound] = UInt8(ascii: ">")
        cases.append(("big.npy", bigEndian, ["unsupported dtype '>i4'"]))

        // A header shape far beyond the file: rejected from the size check, before allocating.
        cases.append(("huge.npy", Self.npyBytes(
            dict: "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, 1000000000), }", body: [1, 2, 3]),
            ["truncated body: header shape (1000000000, 1000000000) of <f8 needs 8000000000000000000 bytes, file has 3"]))
        cases.append(("overflow.npy", Self.npyBytes(
            dict: "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }"),
            ["header shape (1099511627776, 1099511627776) of <f4 is too large"]))
        cases.append(("bytes-overflow.npy", Self.npyBytes(
            dict: "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904,), }"),
            ["header shape (4611686018427387904,) of <f8 is too large"]))
        cases.append(("bigint.npy", Self.npyBytes(
            dict: "{'descr': '<u1', 'fortran_order': False, 'shape': (99999999999999999999,), }"),
            ["too large: dimension 99999999999999999999 does not fit"]))

        let malformed: [(String, String)] = [
            ("{'descr': '<f4', 'fortran_order': False}", "missing key 'shape'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}", "unexpected key 'x'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'shape': (3,)}", "duplicate key 'shape'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", "shape is not a tuple: [3]"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", "shape is not a tuple: 3"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3, -1)}", "negative dimension"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3.0,)}", "non-integer entry 3.0"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (03,)}", "leading zeros"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}", "fortran_order is not a bool: 0"),
            ("{'descr': '<f4', 'fortran_order': false, 'shape': (3,)}", "unexpected name 'false'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,)", "expected ',' or '}'"),
            ("{'descr': '<f4", "unterminated string"),
            ("{'descr' '<f4'}", "expected ':'"),
            ("['descr', '<f4']", "expected a dict"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), } x", "unexpected text after the value"),
            ("", "unexpected end"),
            (String(repeating: "(", count: 100), "nesting too deep"),
            ("{1: 2}", "key 1 is not a string"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", "unsupported dtype [('a', '<f4')]"),
            ("{'descr': None, 'fortran_order': False, 'shape': (3,)}", "unsupported dtype None"),
        ]
        for (index, (dict, problem)) in malformed.enumerated() {
            let isDtype = problem.hasPrefix("unsupported")
            cases.append(("malformed\(index).npy", Self.npyBytes(dict: dict, body: Array(repeating: 0, count: 12)),
                          isDtype ? [problem] : ["malformed header: ", problem]))
        }
        cases.append(("utf8.npy", Self.npyBytes(dict: "{'descr': '<f4'}", major: 3).map { $0 == UInt8(ascii: "<") ? 0xFF : $0 },
                      ["malformed header: not valid UTF-8"]))

        for (name, bytes, parts) in cases {
            let path = try temp.write(name, bytes)
            expectRejection(path, parts) { _ = try NPY.readHeader(path) }
            expectRejection(path, parts) { _ = try NPY.load(path, as: Int32.self) }
        }
    }

    @Test func otherReadErrors() throws {
        let temp = try TemporaryDirectory()
        let i4 = Self.fixture("i4_2d.npy")
        expectRejection(i4, ["dtype <i4 does not match the requested <f4 (Float)"]) {
            _ = try NPY.load(i4, as: Float.self)
        }
        let missing = temp.path("missing.npy")
        expectRejection(missing, ["cannot open: No such file or directory"]) { _ = try NPY.readHeader(missing) }
        expectRejection(temp.url.path, ["not a regular file"]) { _ = try NPY.load(temp.url.path, as: UInt8.self) }
    }

    // MARK: Saving

    @Test func failedSavesLeaveNothingBehind() throws {
        let temp = try TemporaryDirectory()
        let array = NDArray<Float>(shape: [2, 2], scalars: [1, 2, 3, 4])

        // Into a directory that does not exist.
        let missing = temp.path("missing/a.npy")
        expectRejection(missing, ["cannot create temporary file", "No such file or directory"]) {
            try NPY.save(array, to: missing)
        }
        #expect(temp.contents.isEmpty)

        // Onto an existing directory: the temporary file is written, the rename fails, and the
        // temporary file is removed.
        let directory = temp.path("out.npy")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        expectRejection(directory, ["cannot rename into place"]) { try NPY.save(array, to: directory) }
        #expect(temp.contents == ["out.npy"])

        // Shape and element count disagree; a header too long for an explicit version 1.0.
        let wrong = temp.path("wrong.npy")
        expectRejection(wrong, ["shape (3, 2) needs 6 elements, the array has 4"]) {
            try NPY.save(NDArray<Float>(shape: [3, 2], scalars: [1, 2, 3, 4]), to: wrong)
        }
        expectRejection(wrong, ["invalid shape (-1, -4)"]) {
            try NPY.save(NDArray<Float>(shape: [-1, -4], scalars: [1, 2, 3, 4]), to: wrong)
        }
        expectRejection(wrong, ["does not fit format 1.0"]) {
            try NPY.save(NDArray<UInt8>(shape: Array(repeating: 1, count: 22000), scalars: [1]), to: wrong, version: .v1_0)
        }
        #expect(temp.contents == ["out.npy"])
    }

    @Test(.enabled(if: geteuid() != 0, "root ignores directory permissions"))
    func failedSaveIntoReadOnlyDirectory() throws {
        let temp = try TemporaryDirectory()
        let readOnly = temp.path("ro")
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: false,
                                                attributes: [.posixPermissions: 0o555])
        defer { try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: readOnly) }
        let path = readOnly + "/a.npy"
        expectRejection(path, ["cannot create temporary file", "Permission denied"]) {
            try NPY.save(NDArray<UInt8>(shape: [1], scalars: [1]), to: path)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: readOnly).isEmpty)
    }

    @Test func saveReplacesAnExistingFile() throws {
        let temp = try TemporaryDirectory()
        let path = try temp.write("a.npy", Array("old contents".utf8))
        let array = NDArray<Int32>(shape: [2, 1], scalars: [5, -6])
        try NPY.save(array, to: path)
        #expect(try NPY.load(path, as: Int32.self) == array)
        #expect(temp.contents == ["a.npy"])
    }
}

/// The range of the first occurrence of `needle` in `haystack`.
private func findBytes(_ needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
    guard needle.count <= haystack.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) {
        return start..<start + needle.count
    }
    return nil
}
