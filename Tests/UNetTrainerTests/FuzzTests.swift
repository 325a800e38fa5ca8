import Foundation
import Synchronization
import Testing
import Random
@testable import DataIO

/// Hostile files (issue 6, point 6): the NPY and TIFF readers, fed thousands of mutated copies of
/// valid files (Mutator.swift), must end every case in a result or a `DataError` whose message is
/// one line naming the file: no crash, no hang, no absurd allocation.
///
/// Deterministic: case `i` of a format depends only on the seed and `i`. The environment sets the
/// run (Launch/fuzz.sh uses it for long runs):
///
/// - `UNET_FUZZ_CASES`: cases per format (default 4000);
/// - `UNET_FUZZ_SEED`: the seed (default 1);
/// - `UNET_FUZZ_FIRST`: the first case index (default 0), to reproduce a case alone with
///   `UNET_FUZZ_FIRST=i UNET_FUZZ_CASES=1`;
/// - `UNET_FUZZ_DIR`: a folder kept afterwards, holding the current case's file and its
///   description (`<format>.case`), so a case that crashes the process is left behind;
/// - `UNET_FUZZ_TIMEOUT`: seconds one case may take before the run aborts as hung (default 20);
/// - `UNET_FUZZ_VERBOSE=1`: print the kinds of refusal with their counts.
@Suite("Fuzz: hostile files")
struct FuzzTests {
    // MARK: Settings

    static let environment = ProcessInfo.processInfo.environment
    static let cases = environment["UNET_FUZZ_CASES"].flatMap { Int($0) } ?? 4000
    static let seed = environment["UNET_FUZZ_SEED"].flatMap { UInt64($0) } ?? 1
    static let first = environment["UNET_FUZZ_FIRST"].flatMap { Int($0) } ?? 0
    static let timeout = environment["UNET_FUZZ_TIMEOUT"].flatMap { Double($0) } ?? 20
    static let verbose = environment["UNET_FUZZ_VERBOSE"] == "1"

    /// Runs `body` in `UNET_FUZZ_DIR` (kept) or a temporary folder (removed).
    static func withFuzzDirectory(_ body: (String) throws -> Void) throws {
        if let dir = environment["UNET_FUZZ_DIR"] {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try body(dir)
        } else {
            try withTemporaryDirectory(body)
        }
    }

    // MARK: NPY

    /// A valid .npy file to start from: its bytes, and the descr and shape text of its header.
    struct NPYBase {
        var bytes: [UInt8]
        var descr: String
        var shape: String
        var bodyLength: Int
    }

    static func npyBases(in dir: String) throws -> [NPYBase] {
        var bases: [NPYBase] = []
        func add<T: NPYScalar>(_ shape: [Int], _ make: (Int) -> T, version: NPYVersion? = nil) throws {
            let count = shape.reduce(1, *)
            let path = dir + "/base.npy"
            try NPY.save(NDArray(shape: shape, scalars: (0..<count).map(make)), to: path, version: version)
            bases.append(NPYBase(bytes: try readBytes(path), descr: T.npyDType.rawValue, shape: pythonTuple(shape),
                                 bodyLength: count * T.npyDType.itemSize))
        }
        try add([3, 5, 7]) { UInt8(truncatingIfNeeded: $0 * 37) }     // an image stack
        try add([2, 1, 4, 6]) { UInt8(truncatingIfNeeded: $0 * 11) }  // (N, 1, H, W) as Keras saved it
        try add([3, 4, 5], { UInt8(truncatingIfNeeded: $0) }, version: .v3_0)
        try add([4, 6]) { Float($0) * 0.25 - 1 }
        try add([]) { _ in Float(1.5) }                                 // 0-d
        try add([10]) { Int32($0 * 1_000_003) }
        try add([2, 3], { Int32(-$0) }, version: .v2_0)
        try add([0, 4]) { Int32($0) }                                   // empty
        try add([3]) { Double($0) / 3 }
        try add([2, 2]) { Int64($0) << 40 }
        return bases
    }

    @Test func npyReadersSurviveMutatedFiles() throws {
        try Self.withFuzzDirectory { dir in
            let bases = try Self.npyBases(in: dir)
            var run = FuzzRun(format: "npy", directory: dir)
            let path = dir + "/case.npy"
            for index in Self.first..<(Self.first + Self.cases) {
                try run.generating(index)
                var m = Mutator(seed: Self.seed, format: 1, index: index)
                let base = m.pick(bases)
                var bytes = base.bytes
                var what: [String] = ["base \(base.descr) \(base.shape)"]
                if m.chance(0.5) {
                    what.append(NPYMutations.mutate(&bytes, descr: base.descr, shape: base.shape,
                                                    bodyLength: base.bodyLength, &m))
                    if m.chance(0.2) { what.append(m.generic(&bytes)) }
                } else {
                    what.append(m.generic(&bytes))
                }
                try run.begin(index: index, bytes: bytes, path: path, description: what.joined(separator: "; "))
                run.check("readHeader") { _ = try NPY.readHeader(path) }
                run.check("load UInt8") { try Self.checkLoaded(NPY.load(path, as: UInt8.self), path) }
                run.check("load Int32") { try Self.checkLoaded(NPY.load(path, as: Int32.self), path) }
                run.check("load Float") { try Self.checkLoaded(NPY.load(path, as: Float.self), path) }
                run.check("load Double") { try Self.checkLoaded(NPY.load(path, as: Double.self), path) }
                run.check("load Int64") { try Self.checkLoaded(NPY.load(path, as: Int64.self), path) }
                run.check("loadImageStack") {
                    let stack = try NPY.loadImageStack(path)
                    try Self.checkLoaded(stack, path)
                    guard stack.rank == 3 else { throw Invariant("image stack of rank \(stack.rank)") }
                }
                run.end()
            }
            run.finish()
        }
    }

    /// What a successful load must satisfy: as many elements as the shape says, no more bytes
    /// than the file has.
    static func checkLoaded<T>(_ array: NDArray<T>, _ path: String) throws {
        guard let count = NDArray<T>.elementCount(of: array.shape), count == array.scalars.count else {
            throw Invariant("shape \(array.shape) with \(array.scalars.count) elements")
        }
        var info = stat()
        stat(path, &info)
        guard count * MemoryLayout<T>.stride <= Int(info.st_size) else {
            throw Invariant("\(count) elements from a \(info.st_size)-byte file")
        }
    }

    // MARK: TIFF

    static func tiffBases(in dir: String) throws -> [[UInt8]] {
        var bases: [[UInt8]] = []
        // As the tool writes them (and the TIFF tests do): 8-bit grayscale, 2 strips, each scheme.
        let (w, h) = (96, 100)
        let pixels = (0..<(w * h)).map { i in UInt8(truncatingIfNeeded: (i % w) * 7 + (i / w) * 13 + (i * 2_654_435_761) >> 27) }
        for compression in [TIFF.Compression.none, .lzw, .deflate, .packBits] {
            let path = dir + "/base.tif"
            try TIFF.writeGray8(pixels, width: w, height: h, to: path, compression: compression)
            bases.append(try readBytes(path))
        }
        // The committed fixtures (tifffile, Pillow): tiles, 16 bits, RGB, planar, min-is-white.
        let fixtures = fixturesDirectory.appendingPathComponent("tiff").path
        for name in try FileManager.default.contentsOfDirectory(atPath: fixtures).sorted() where name.hasSuffix(".tif") {
            bases.append(try readBytes(fixtures + "/" + name))
        }
        return bases
    }

    @Test func tiffReaderSurvivesMutatedFiles() throws {
        try Self.withFuzzDirectory { dir in
            let bases = try Self.tiffBases(in: dir)
            var run = FuzzRun(format: "tiff", directory: dir)
            let path = dir + "/case.tif"
            for index in Self.first..<(Self.first + Self.cases) {
                try run.generating(index)
                var m = Mutator(seed: Self.seed, format: 2, index: index)
                let baseIndex = m.below(bases.count)
                var bytes = bases[baseIndex]
                var what: [String] = ["base \(baseIndex)"]
                if m.chance(0.6), let done = TIFFMutations.mutate(&bytes, &m) {
                    what.append(done)
                    if m.chance(0.25) {
                        what.append(m.chance(0.5) ? (TIFFMutations.mutate(&bytes, &m) ?? "-") : m.generic(&bytes))
                    }
                } else {
                    what.append(m.generic(&bytes))
                }
                try run.begin(index: index, bytes: bytes, path: path, description: what.joined(separator: "; "))
                run.check("TIFF.read") {
                    let image = try TIFF.read(path)
                    guard image.width >= 1, image.height >= 1, image.width <= TIFF.maxDimension,
                          image.height <= TIFF.maxDimension, image.pixels.count == image.width * image.height,
                          image.pixels.count <= TIFF.maxPixels, image.gray8().count == image.pixels.count
                    else { throw Invariant("image \(image.width)x\(image.height) with \(image.pixels.count) pixels") }
                }
                run.end()
            }
            run.finish()
        }
    }

    /// The cases the issue names, each checked for its message.
    @Test func hugeTIFFHeadersAreRefusedBeforeAllocating() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/huge.tif"
            try TIFF.writeGray8([UInt8](repeating: 9, count: 64 * 64), width: 64, height: 64, to: path)
            let good = try readBytes(path)
            let layout = try #require(TIFFMutations.Layout(good))
            func variant(_ tags: [(UInt16, UInt32)]) -> [UInt8] {
                var bytes = good
                for (tag, value) in tags {
                    if let at = layout.entry(tag) { layout.set(&bytes, entry: at, value: value, long: value > 0xFFFF) }
                }
                return bytes
            }
            let cases: [([(UInt16, UInt32)], String)] = [
                ([(256, 1 << 30), (257, 1 << 30)], ""),  // libtiff refuses it first (StripOffsets)
                ([(256, 65536), (257, 65536)], "is larger than the reader's limit"),
                ([(256, 4096), (257, 4096)], "the file has only"),
                ([(256, 8192), (257, 8192), (259, 8)], "implausible for compression 8"),
                ([(258, 32)], "unsupported 32-bit samples"),
                ([(258, 16)], "the file has only"),
                ([(277, 3)], "unsupported photometric interpretation 1 with 3 samples per pixel"),
            ]
            for (tags, needle) in cases {
                try writeBytes(variant(tags), path)
                let clock = ContinuousClock()
                var error: DataError?
                let elapsed = clock.measure { error = #expect(throws: DataError.self) { try TIFF.read(path) } }
                #expect(error?.path == path)
                #expect(error.map { needle.isEmpty || $0.problem.contains(needle) } == true, "\(tags): \(error.map(String.init(describing:)) ?? "no error")")
                #expect(elapsed < .seconds(1), "\(tags): \(elapsed)")  // no gigabytes were zeroed
            }
        }
    }

    /// A FIFO named like a data file is refused at once (opening it used to wait for a writer).
    @Test func fifosAreRefusedWithoutWaiting() throws {
        try withTemporaryDirectory { dir in
            for name in ["imgs_train.npy", "1_1.tif"] {
                let path = dir + "/" + name
                #expect(mkfifo(path, 0o644) == 0)
                let error = #expect(throws: DataError.self) {
                    if name.hasSuffix(".npy") { _ = try NPY.load(path, as: UInt8.self) } else { _ = try TIFF.read(path) }
                }
                #expect(error?.path == path && error?.problem == "not a regular file", "\(String(describing: error))")
            }
        }
    }

    /// A sparse file exactly as large as its header says, but larger than memory: refused before
    /// allocating, the header itself still readable.
    @Test func npyLargerThanMemoryIsRefused() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/sparse.npy"
            let memory = physicalMemoryBytes()
            let header = try #require(NPY.encodeHeader(dtype: .uint8, shape: [memory + 1]))
            try writeBytes(header, path)
            #expect(truncate(path, off_t(header.count + memory + 1)) == 0)
            #expect(try NPY.readHeader(path).shape == [memory + 1])
            let error = #expect(throws: DataError.self) { _ = try NPY.load(path, as: UInt8.self) }
            #expect(error?.problem.contains("bytes of memory") == true, "\(String(describing: error))")
        }
    }

    @Test func hostileNPYHeadersGiveOneLineErrors() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/bad.npy"
            for dict in ["{'descr': '<f4\n', 'fortran_order': False, 'shape': (3,), }",
                         "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)\r\n\u{85}, }",
                         "{'descr': '\u{7}', 'fortran_order': False, 'shape': (3,), }",
                         "{'descr': '<f4', 'fortran_order': False, 'sha\npe': (3,), }"] {
                try writeBytes(NPYMutations.header(dict: dict, major: 1) + [UInt8](repeating: 0, count: 12), path)
                let error = #expect(throws: DataError.self) { try NPY.load(path, as: Float.self) }
                #expect(error.map { FuzzRun.isOneLine($0.description) } == true, "\(error.map(String.init(describing:)) ?? "")")
                #expect(error?.path == path)
            }
        }
    }
}

/// A broken invariant of a successful read.
struct Invariant: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// One format's run: writes each case, checks every read's outcome, collects failures and a tally,
/// and aborts the process (naming the case) if a case hangs.
struct FuzzRun {
    let format: String
    let directory: String
    let watchdog = Watchdog(limit: FuzzTests.timeout)
    var index = 0
    var description = ""
    var path = ""
    var cases = 0, readsSucceeded = 0, readsRefused = 0
    var failures: [String] = []
    var kinds: [String: Int] = [:]
    let start = ContinuousClock.now

    init(format: String, directory: String) {
        self.format = format
        self.directory = directory
    }

    /// Notes the case about to be generated (in `UNET_FUZZ_DIR`, where a crash leaves it).
    func generating(_ index: Int) throws {
        guard FuzzTests.environment["UNET_FUZZ_DIR"] != nil else { return }
        try Self.writeCase(Array("case \(index) seed \(FuzzTests.seed): (while generating it: a bug of Mutator.swift)\n".utf8),
                           directory + "/\(format).case")
    }

    mutating func begin(index: Int, bytes: [UInt8], path: String, description: String) throws {
        self.index = index
        self.description = description
        self.path = path
        if FuzzTests.environment["UNET_FUZZ_DIR"] != nil {
            // Left behind if this case crashes the process.
            try Self.writeCase(Array("case \(index) seed \(FuzzTests.seed): \(description)\n".utf8), directory + "/\(format).case")
        }
        try Self.writeCase(bytes, path)
        watchdog.begin("\(format) case \(index) (\(description))")
        cases += 1
    }

    mutating func end() { watchdog.end() }

    /// Writes a case as a new file (removing the last one first: ext4 flushes a file truncated and
    /// rewritten in place on close, which made every case wait for the disk).
    static func writeCase(_ bytes: [UInt8], _ path: String) throws {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Invariant("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else { throw Invariant("cannot write \(path): errno \(errno)") }
    }

    /// Runs one read of the current case: a result or a one-line `DataError` naming the file.
    mutating func check(_ reader: String, _ read: () throws -> Void) {
        do {
            try read()
            readsSucceeded += 1
        } catch let error as DataError {
            readsRefused += 1
            if error.path != path || !error.description.hasPrefix(path + ": ") {
                fail(reader, "the error does not name the file: \(error)")
            } else if !Self.isOneLine(error.description) {
                fail(reader, "the error is not one line: \(error.description.debugDescription)")
            } else if error.problem.isEmpty || error.description.count > 600 {
                fail(reader, "the error is empty or overlong (\(error.description.count) characters): \(error)")
            }
            if FuzzTests.verbose { kinds[Self.kind(of: error.problem), default: 0] += 1 }
        } catch {
            fail(reader, "\(type(of: error)): \(error)")
        }
    }

    mutating func fail(_ reader: String, _ problem: String) {
        failures.append("\(format) case \(index) (\(description)): \(reader): \(problem)")
    }

    /// No line breaks, no control characters.
    static func isOneLine(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { c in
            !(c.value < 0x20 || (0x7F...0x9F).contains(c.value) || c == "\u{2028}" || c == "\u{2029}")
        }
    }

    /// The kind of refusal: the message up to what it quotes, numbers and quoted text blanked.
    static func kind(of problem: String) -> String {
        var out = "", quoted = false
        for c in problem.prefix(100) {
            if c == "\"" || c == "(" || out.hasSuffix(" at character") { break }
            if c == "'" { quoted.toggle(); out.append(c); continue }
            if quoted { continue }
            if c.isNumber { if out.last != "#" { out.append("#") } } else { out.append(c) }
        }
        return out
    }

    func finish() {
        watchdog.stop()
        let seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - start).components.seconds)
        print(String(format: "fuzz %@: %d cases (seed %llu, first %d): %d reads succeeded, %d refused with a one-line error, %d failures, %.1f s",
                     format, cases, FuzzTests.seed, FuzzTests.first, readsSucceeded, readsRefused, failures.count, seconds))
        if FuzzTests.verbose {
            for (kind, count) in kinds.sorted(by: { $0.value > $1.value }) { print("  \(count)\t\(kind)") }
        }
        let reproduce = "reproduce one case with UNET_FUZZ_SEED=\(FuzzTests.seed) UNET_FUZZ_FIRST=<case> UNET_FUZZ_CASES=1"
        let report = "\(failures.count) failures (\(reproduce)):\n" + failures.prefix(20).joined(separator: "\n")
        #expect(failures.isEmpty, Comment(rawValue: report))
    }
}

/// Aborts the process, naming the case, when one case runs longer than `limit` seconds (a hang
/// cannot be interrupted in-process; the case description is what makes it reproducible).
final class Watchdog: Sendable {
    private let state = Mutex<(label: String, started: UInt64, stopped: Bool)>(("", 0, false))
    private let limit: Double

    init(limit: Double) {
        self.limit = limit
        Thread.detachNewThread { [self] in
            while true {
                Thread.sleep(forTimeInterval: 0.25)
                let (label, started, stopped) = state.withLock { $0 }
                if stopped { return }
                if started != 0, Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9 > self.limit {
                    FileHandle.standardError.write(Data("fuzz: \(label) still running after \(self.limit) s: a hang\n".utf8))
                    abort()
                }
            }
        }
    }

    func begin(_ label: String) { state.withLock { $0.label = label; $0.started = DispatchTime.now().uptimeNanoseconds } }
    func end() { state.withLock { $0.started = 0 } }
    func stop() { state.withLock { $0.stopped = true } }
}
