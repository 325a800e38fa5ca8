import CHDF5
@testable import Checkpoint
import Training
import DataIO
import Foundation
import Model
import Random
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Damaged checkpoints (issue 6, point 6, the HDF5 part): thousands of mutated copies of a valid
/// checkpoint — bit flips, byte and integer overwrites, truncations, appended junk, zeroed or
/// copied ranges, and, with the header, its own fields — must each end in a result or a
/// `DataError` whose message is one line naming the file: no crash, no hang, no absurd allocation.
///
/// - `checkpointsWithTheHeader`: files as this program writes them. Every changed byte is covered
///   by a CRC-32, so every mutated file must be refused by `CheckpointHeader.verify`, before HDF5
///   is called (and `Checkpoint.read` must give the same line). In-process.
/// - `filesWithoutTheHeader`: plain HDF5 files (as Keras writes, or as checkpoints were before the
///   header), whose only check before HDF5 is the superblock's length. HDF5 parses the damaged
///   file itself, so the cases run in child processes (this test binary, `plainHDF5Child`) that
///   report case by case: a case that kills its child (a crash), or runs longer than the time
///   limit (a hang), is recorded and the next child goes on after it. Mutations aim at HDF5's
///   metadata (not the weights' raw data, which the FNV-1a checksums catch). Reads that succeed
///   with values other than the original's are counted too ("silently different").
///
/// Deterministic: case `i` depends only on the seed and `i`. Environment, as the TIFF/NPY fuzz:
/// `UNET_FUZZ_CASES` (cases with the header, default 1500; without it 200 by default, else a
/// tenth of `UNET_FUZZ_CASES`, at least 20),
/// `UNET_FUZZ_SEED` (default 1), `UNET_FUZZ_FIRST` (first case, default 0; reproduce one with
/// `UNET_FUZZ_FIRST=i UNET_FUZZ_CASES=1`, which runs case i of both tests), `UNET_FUZZ_TIMEOUT`
/// (seconds per case, default 20), `UNET_FUZZ_VERBOSE=1` (kinds of refusal with counts),
/// `UNET_FUZZ_PLAIN_CASES` (overrides the count without the header). Launch/fuzz-checkpoint.sh
/// runs a long campaign.
@Suite("Checkpoint fuzz: damaged files")
struct CheckpointFuzzTests {
    static let environment = ProcessInfo.processInfo.environment
    static let cases = environment["UNET_FUZZ_CASES"].flatMap { Int($0) } ?? 1500
    static let plainCases = environment["UNET_FUZZ_PLAIN_CASES"].flatMap { Int($0) }
        ?? (environment["UNET_FUZZ_CASES"] == nil ? 200 : max(cases / 10, min(cases, 20)))
    static let seed = environment["UNET_FUZZ_SEED"].flatMap { UInt64($0) } ?? 1
    static let first = environment["UNET_FUZZ_FIRST"].flatMap { Int($0) } ?? 0
    static let timeout = environment["UNET_FUZZ_TIMEOUT"].flatMap { Double($0) } ?? 20
    static let verbose = environment["UNET_FUZZ_VERBOSE"] == "1"
    /// Set in the child processes of `filesWithoutTheHeader`: their job folder.
    static let childJob = environment["UNET_CHECKPOINT_FUZZ_CHILD"]

    static let configuration = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 2, upsample: .transpose)

    /// Runs `body` in a new folder inside `UNET_FUZZ_DIR` (kept, with a copy of every case that
    /// crashed or hung: `crash-<case>.h5`, `hang-<case>.h5`) or in a temporary folder (removed).
    static func withFuzzDirectory(_ body: (String) throws -> Void) throws {
        guard let parent = environment["UNET_FUZZ_DIR"] else { return try withTemporaryDirectory(body) }
        let dir = parent + "/checkpoint-\(getpid())-\(UInt64.random(in: 0...UInt64.max) % 1_000_000)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try body(dir)
    }

    // MARK: With the header

    @Test(.enabled(if: childJob == nil), .timeLimit(.minutes(10)))
    func checkpointsWithTheHeader() throws {
        try Self.withFuzzDirectory { dir in
            let path = dir + "/unet.h5"
            let checkpoint = fuzzCheckpoint(Self.configuration)
            try checkpoint.write(to: path)
            let original = try readBytes(path)
            let targets = try CheckpointFuzzTargets(path: path, header: true)
            var tally = CheckpointFuzzTally()
            let started = ContinuousClock.now
            var slowest: (Duration, Int) = (.zero, -1)
            for index in Self.first..<(Self.first + Self.cases) {
                var rng = SeededGenerator(seed: Self.seed, stream: 0xC4EC, UInt64(index))
                let (bytes, description) = CheckpointMutation.apply(to: original, targets: targets, header: true, &rng)
                try writeBytes(bytes, path)
                let caseStart = ContinuousClock.now
                let label = "case \(index) (\(description))"
                var verifyError: DataError? = nil
                do {
                    _ = try CheckpointHeader.verify(path)
                } catch let error as DataError {
                    verifyError = error
                } catch {
                    tally.failures.append("\(label): verify threw \(type(of: error)): \(error)")
                }
                let outcome = CheckpointFuzzOutcome.of(path: path, original: checkpoint) {
                    try Checkpoint.read(from: path)
                }
                let elapsed = ContinuousClock.now - caseStart
                if elapsed > slowest.0 { slowest = (elapsed, index) }
                tally.record(outcome, label: label, path: path)
                if bytes == original {
                    if outcome != .same { tally.failures.append("\(label): the unchanged file did not read back: \(outcome)") }
                } else if verifyError == nil {
                    tally.failures.append("\(label): a changed file passed the header check (\(outcome))")
                } else if case .refused(let message) = outcome, message != verifyError!.description {
                    tally.failures.append("\(label): read says \(message), the header check said \(verifyError!)")
                }
            }
            tally.report("checkpoint fuzz, with the header", seconds: seconds(since: started),
                         extra: "slowest case \(slowest.1): \(slowest.0)")
            #expect(tally.refused + tally.same == Self.cases)
            #expect(tally.failures.isEmpty, Comment(rawValue: "\(tally.failures.count) failures:\n" + tally.failures.prefix(20).joined(separator: "\n")))
        }
    }

    // MARK: Without the header (plain HDF5), in child processes

    @Test(.enabled(if: childJob == nil), .timeLimit(.minutes(30)))
    func filesWithoutTheHeader() throws {
        try Self.withFuzzDirectory { dir in
            let original = dir + "/original.h5"
            try fuzzCheckpoint(Self.configuration).write(to: original, operations: .system, header: false)
            let exe = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            let end = Self.first + Self.plainCases
            var next = Self.first
            var crashes: [String] = [], hdf5Crashes: [String] = [], hangs: [String] = [], problems: [String] = []
            var results: [Int: CheckpointFuzzOutcome] = [:]
            var largestGrowth = (kib: 0, index: -1), largestRSS = 0
            var largeAllocations: [(index: Int, mib: Int)] = []
            var children = 0
            let started = ContinuousClock.now
            let targets = try CheckpointFuzzTargets(path: original, header: false)
            let originalBytes = try readBytes(original)
            func mutated(_ index: Int) -> ([UInt8], String) {
                var rng = SeededGenerator(seed: Self.seed, stream: 0x91A1, UInt64(index))
                return CheckpointMutation.apply(to: originalBytes, targets: targets, header: false, &rng)
            }
            func label(_ index: Int) -> String { "case \(index) (\(mutated(index).1))" }
            while next < end {
                children += 1
                let progress = dir + "/progress-\(children)"
                _ = FileManager.default.createFile(atPath: progress, contents: nil)
                let child = Process()
                child.executableURL = URL(fileURLWithPath: exe)
                child.arguments = ["--testing-library", "swift-testing", "--filter", "plainHDF5Child"]
                var environment = Self.environment
                environment["UNET_CHECKPOINT_FUZZ_CHILD"] = dir
                environment["UNET_CHECKPOINT_FUZZ_RANGE"] = "\(next) \(end) \(progress)"
                child.environment = environment
                child.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                child.standardError = FileHandle(forWritingAtPath: "/dev/null")
                try child.run()
                var lastChange = ContinuousClock.now, lastSize = 0
                var hung = false
                while child.isRunning {
                    Thread.sleep(forTimeInterval: 0.02)
                    let size = (try? FileManager.default.attributesOfItem(atPath: progress)[.size] as? Int) ?? 0
                    if size != lastSize { (lastSize, lastChange) = (size, .now) }
                    if seconds(since: lastChange) > Self.timeout {
                        kill(child.processIdentifier, SIGKILL)
                        hung = true
                        break
                    }
                }
                child.waitUntilExit()
                // "begin <i>" before each case, "end <i> <max RSS KiB> <outcome>" after it.
                var begun: Int? = nil, previousRSS: Int? = nil
                let text = (try? String(contentsOfFile: progress, encoding: .utf8)) ?? ""
                for line in text.split(separator: "\n") {
                    let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
                    guard parts.count >= 2, let index = Int(parts[1]) else { continue }
                    if parts[0] == "begin" {
                        begun = index
                    } else if parts[0] == "end", parts.count == 4, let rss = Int(parts[2]) {
                        results[index] = CheckpointFuzzOutcome(serialized: parts[3])
                        if let previousRSS, rss - previousRSS > largestGrowth.kib { largestGrowth = (rss - previousRSS, index) }
                        if let previousRSS, rss - previousRSS > 256 << 10 { largeAllocations.append((index, (rss - previousRSS) >> 10)) }
                        (previousRSS, largestRSS) = (rss, max(largestRSS, rss))
                        begun = nil
                        next = index + 1
                    }
                }
                let died = hung || child.terminationReason == .uncaughtSignal || child.terminationStatus != 0
                if let failed = begun, died {
                    if hung {
                        hangs.append("\(label(failed)): still running after \(Self.timeout) s")
                    } else if child.terminationReason == .uncaughtSignal,
                              [SIGSEGV, SIGBUS].contains(child.terminationStatus) {
                        hdf5Crashes.append("\(label(failed)): the reading process died (signal \(child.terminationStatus))")
                    } else {
                        let how = child.terminationReason == .uncaughtSignal ? "signal" : "exit status"
                        crashes.append("\(label(failed)): the reading process died (\(how) \(child.terminationStatus))")
                    }
                    if Self.environment["UNET_FUZZ_DIR"] != nil {
                        try writeBytes(mutated(failed).0, dir + "/\(hung ? "hang" : "crash")-\(failed).h5")
                    }
                    next = failed + 1
                } else if next < end || died {
                    problems.append("child \(children) stopped outside any case (status \(child.terminationStatus)) at case \(next)")
                    break
                }
            }
            var tally = CheckpointFuzzTally()
            for (index, outcome) in results.sorted(by: { $0.key < $1.key }) {
                tally.record(outcome, label: label(index), path: dir + "/case.h5")
            }
            tally.report("checkpoint fuzz, plain HDF5 (no header)", seconds: seconds(since: started),
                         extra: "\(children) child process\(children == 1 ? "" : "es"); \(hdf5Crashes.count) crashes in HDF5"
                            + " (SIGSEGV/SIGBUS), \(crashes.count) other crashes, \(hangs.count) hangs;"
                            + " max RSS \(largestRSS / 1024) MiB, largest growth in one case \(largestGrowth.kib / 1024) MiB (case \(largestGrowth.index))")
            for line in hdf5Crashes + crashes + hangs { print("  " + line) }
            // HDF5 1.10 allocates (and clears) what a damaged variable-length string's length says,
            // up to the children's 2 GiB limit: listed, not failed (see Checkpoint.read).
            for (index, mib) in largeAllocations {
                print("  \(label(index)): the reading process grew by \(mib) MiB: \(results[index].map { "\($0)" } ?? "")")
            }
            #expect(problems.isEmpty, "\(problems)")
            #expect(results.count + hdf5Crashes.count + crashes.count + hangs.count == Self.plainCases)
            // HDF5 1.10 (Debian 12's) crashes on some damaged files: a reference to a variable-length
            // string whose object index its global heap collection does not have (H5HG_read does not
            // check it; HDF5 1.14 and 2.0 refuse these files with "bad heap index"). Known, listed
            // above on every run, and not hidden: see Checkpoint.read.
            withKnownIssue("HDF5 1.10 crashes on some damaged HDF5 files (bad global heap references)", isIntermittent: true) {
                #expect(hdf5Crashes.isEmpty, Comment(rawValue: "HDF5 crashed on \(hdf5Crashes.count) damaged files:\n"
                    + hdf5Crashes.prefix(20).joined(separator: "\n")))
            }
            #expect(tally.failures.isEmpty, Comment(rawValue: "\(tally.failures.count) failures:\n" + tally.failures.prefix(20).joined(separator: "\n")))
            #expect(crashes.isEmpty, Comment(rawValue: "the reading process crashed on \(crashes.count) damaged files:\n" + crashes.prefix(20).joined(separator: "\n")))
            #expect(hangs.isEmpty, Comment(rawValue: "HDF5 hung on \(hangs.count) damaged files:\n" + hangs.prefix(20).joined(separator: "\n")))
        }
    }

    /// The child process of `filesWithoutTheHeader`: runs the cases of its range, appending
    /// "begin i" before and "end i <outcome>" after each to the progress file; at most 2 GiB of
    /// data (a larger allocation fails instead of exhausting the machine) and no core files.
    @Test(.enabled(if: childJob != nil))
    func plainHDF5Child() throws {
        guard let dir = Self.childJob,
              let range = Self.environment["UNET_CHECKPOINT_FUZZ_RANGE"]?.split(separator: " ").map(String.init),
              range.count == 3, let start = Int(range[0]), let end = Int(range[1]) else { return }
        var limit = rlimit(rlim_cur: 2 << 30, rlim_max: 2 << 30)
        setrlimit(Int32(RLIMIT_DATA.rawValue), &limit)
        var noCore = rlimit(rlim_cur: 0, rlim_max: 0)
        setrlimit(Int32(RLIMIT_CORE.rawValue), &noCore)
        let progress = open(range[2], O_WRONLY | O_APPEND | O_CLOEXEC)
        defer { close(progress) }
        func say(_ line: String) { _ = line.withCString { write(progress, $0, strlen($0)) } }

        let originalPath = dir + "/original.h5"
        let checkpoint = try Checkpoint.read(from: originalPath)
        let original = try readBytes(originalPath)
        let targets = try CheckpointFuzzTargets(path: originalPath, header: false)
        let path = dir + "/case.h5"
        defer { unlink(path) }
        for index in start..<end {
            var rng = SeededGenerator(seed: Self.seed, stream: 0x91A1, UInt64(index))
            let (bytes, _) = CheckpointMutation.apply(to: original, targets: targets, header: false, &rng)
            try writeBytes(bytes, path)
            say("begin \(index)\n")
            let outcome = CheckpointFuzzOutcome.of(path: path, original: checkpoint) { try Checkpoint.read(from: path) }
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            say("end \(index) \(usage.ru_maxrss) \(outcome.serialized)\n")
        }
    }
}

// MARK: - Outcomes

/// What reading one damaged file gave.
enum CheckpointFuzzOutcome: Equatable, CustomStringConvertible {
    /// Read, and equal to the original checkpoint.
    case same
    /// Read, with different values (damage nothing checks).
    case different(String)
    /// Refused with a `DataError` (its description).
    case refused(String)
    /// Anything else: another error type.
    case wrong(String)

    static func of(path: String, original: Checkpoint, _ read: () throws -> Checkpoint) -> Self {
        do {
            let back = try read()
            if back == original { return .same }
            var what: [String] = []
            if back.configuration != original.configuration { what.append("configuration") }
            if back.parameters.map(\.bitPattern) != original.parameters.map(\.bitPattern) { what.append("weights") }
            if back.state != original.state { what.append("training state") }
            return .different(what.joined(separator: ", "))
        } catch let error as DataError {
            return .refused(error.description)
        } catch {
            return .wrong("\(type(of: error)): \(error)")
        }
    }

    var description: String {
        switch self {
        case .same: "read, same as the original"
        case .different(let what): "read, but different: \(what)"
        case .refused(let message): "refused: \(message)"
        case .wrong(let message): "unexpected error: \(message)"
        }
    }

    /// One line for the child's progress file.
    var serialized: String {
        switch self {
        case .same: "same"
        case .different(let what): "different " + what
        case .refused(let message): "refused " + message.replacingOccurrences(of: "\n", with: "\\n")
        case .wrong(let message): "wrong " + message.replacingOccurrences(of: "\n", with: "\\n")
        }
    }

    /// From `serialized`.
    init(serialized line: String) {
        let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let rest = parts.count > 1 ? parts[1] : ""
        switch parts[0] {
        case "same": self = .same
        case "different": self = .different(rest)
        case "refused": self = .refused(rest.replacingOccurrences(of: "\\n", with: "\n"))
        default: self = .wrong(rest)
        }
    }
}

/// Counts of outcomes and the failures among them.
struct CheckpointFuzzTally {
    var same = 0, different = 0, refused = 0
    var failures: [String] = []
    var kinds: [String: Int] = [:]
    var differentKinds: [String: Int] = [:]

    mutating func record(_ outcome: CheckpointFuzzOutcome, label: String, path: String) {
        switch outcome {
        case .same: same += 1
        case .different(let what):
            different += 1
            differentKinds[what, default: 0] += 1
        case .refused(let message):
            refused += 1
            let problem = message.hasPrefix(path + ": ") ? String(message.dropFirst(path.count + 2)) : message
            if !message.hasPrefix(path + ": ") {
                failures.append("\(label): the error does not name the file: \(message)")
            } else if message.unicodeScalars.contains(where: {
                $0.value < 0x20 || (0x7f...0x9f).contains($0.value) || $0 == "\u{2028}" || $0 == "\u{2029}"
            }) {
                failures.append("\(label): the error is not one line: \(message.debugDescription)")
            } else if problem.isEmpty || message.count > 600 {
                failures.append("\(label): the error is empty or overlong: \(message)")
            }
            kinds[Self.kind(of: problem), default: 0] += 1
        case .wrong(let message):
            failures.append("\(label): \(message)")
        }
    }

    /// The message with numbers blanked: the kind of refusal.
    static func kind(of problem: String) -> String {
        var out = ""
        for c in problem.prefix(80) {
            if c.isNumber || (out.hasSuffix("#") && c.isHexDigit) { if out.last != "#" { out.append("#") } } else { out.append(c) }
        }
        return out
    }

    func report(_ title: String, seconds: Double, extra: String) {
        print(String(format: "%@: %d cases (seed %llu, first %d) in %.1f s: %d refused with a one-line error, %d read unchanged, %d read but different, %d failures; %@",
                     title, same + different + refused, CheckpointFuzzTests.seed, CheckpointFuzzTests.first, seconds,
                     refused, same, different, failures.count, extra))
        if CheckpointFuzzTests.verbose {
            for (kind, count) in kinds.sorted(by: { $0.value > $1.value }) { print("  \(count)\t\(kind)") }
        }
        for (what, count) in differentKinds.sorted(by: { $0.value > $1.value }) { print("  \(count)\tread but different: \(what)") }
    }
}

// MARK: - Mutations

/// Where mutations aim: the checkpoint header (when there is one), HDF5's metadata (everything
/// but the datasets' raw data), or anywhere.
struct CheckpointFuzzTargets {
    let count: Int
    let header: Bool
    /// Byte ranges not holding any dataset's raw data (superblock, object headers, B-trees,
    /// heaps, attributes), in file order.
    let metadata: [Range<Int>]
    let metadataBytes: Int

    init(path: String, header: Bool) throws {
        count = try readBytes(path).count
        self.header = header
        let file = H5Fopen(path, chdf5_acc_rdonly(), chdf5_p_default())
        guard file >= 0 else { throw DataError(path, "cannot open") }
        defer { H5Fclose(file) }
        var data: [Range<Int>] = []
        let names = CheckpointFuzzTests.configuration.parameterTable.map { "\($0.layer)/\($0.layer)/\($0.name)" }
            + ["unet_trainer/training_state/adam_m", "unet_trainer/training_state/adam_v"]
        for name in names {
            let dataset = H5Dopen2(file, name, chdf5_p_default())
            guard dataset >= 0 else { throw DataError(path, "no dataset \(name)") }
            defer { H5Dclose(dataset) }
            let offset = H5Dget_offset(dataset), size = H5Dget_storage_size(dataset)
            guard offset != haddr_t.max else { continue }
            data.append(Int(offset)..<(Int(offset) + Int(size)))
        }
        data.sort { $0.lowerBound < $1.lowerBound }
        var metadata: [Range<Int>] = []
        var at = header ? CheckpointHeader.size : 0
        for range in data {
            if range.lowerBound > at { metadata.append(at..<range.lowerBound) }
            at = max(at, range.upperBound)
        }
        if at < count { metadata.append(at..<count) }
        self.metadata = metadata
        metadataBytes = metadata.reduce(0) { $0 + $1.count }
    }

    /// A position: in the header (a quarter of the time when there is one), in HDF5's metadata
    /// (half of the rest), or anywhere.
    func position(_ rng: inout SeededGenerator) -> Int {
        let choice = rng.int(in: 0...3)
        if header, choice == 0 { return rng.int(in: 0...(CheckpointHeader.size - 1)) }
        if choice >= 2, metadataBytes > 0 {
            var k = rng.int(in: 0...(metadataBytes - 1))
            for range in metadata {
                if k < range.count { return range.lowerBound + k }
                k -= range.count
            }
        }
        return rng.int(in: 0...(count - 1))
    }
}

enum CheckpointMutation {
    /// A mutated copy of `original` and a description of what was done (for reproduction).
    static func apply(to original: [UInt8], targets: CheckpointFuzzTargets, header: Bool,
                      _ rng: inout SeededGenerator) -> ([UInt8], String) {
        var bytes = original
        let kinds = header ? 9 : 8
        switch rng.int(in: 0...(kinds - 1)) {
        case 0:
            let n = rng.int(in: 1...8)
            let spots = (0..<n).map { _ in (targets.position(&rng), rng.int(in: 0...7)) }
            for (at, bit) in spots { bytes[at] ^= 1 << bit }
            return (bytes, "flip bits " + spots.map { "\($0.0).\($0.1)" }.joined(separator: " "))
        case 1:
            let n = rng.int(in: 1...16)
            let interesting: [UInt8] = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe]
            var done: [String] = []
            for _ in 0..<n {
                let at = targets.position(&rng)
                let value = rng.bernoulli(0.5) ? interesting[rng.int(in: 0...(interesting.count - 1))] : UInt8(rng.int(in: 0...255))
                bytes[at] = value
                done.append("\(at)=\(value)")
            }
            return (bytes, "set bytes " + done.joined(separator: " "))
        case 2:
            // An integer field overwritten: sizes, addresses, counts, lengths.
            let width = [1, 2, 4, 8][rng.int(in: 0...3)]
            let at = min(targets.position(&rng), original.count - width)
            let old = (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
            let mask: UInt64 = width == 8 ? .max : (1 << (8 * UInt64(width))) - 1
            let candidates: [UInt64] = [0, mask, mask >> 1, (mask >> 1) + 1, old &+ 1, old &- 1, old &* 2, old >> 1,
                                        old &+ 512, old &- 512, 1 << 31, 1 << 40, UInt64(original.count), rng.next()]
            let value = candidates[rng.int(in: 0...(candidates.count - 1))] & mask
            for k in 0..<width { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
            return (bytes, "set u\(width * 8) at \(at) to \(value) (was \(old))")
        case 3:
            let length = rng.bernoulli(0.5) ? rng.int(in: 0...(original.count - 1)) : min(targets.position(&rng), original.count - 1)
            return (Array(bytes[..<length]), "truncate to \(length) bytes")
        case 4:
            let n = rng.int(in: 1...4096)
            let zeros = rng.bernoulli(0.3)
            bytes += (0..<n).map { _ in zeros ? 0 : UInt8(rng.int(in: 0...255)) }
            return (bytes, "append \(n) \(zeros ? "zero" : "random") bytes")
        case 5:
            let at = targets.position(&rng)
            let n = min(rng.bernoulli(0.5) ? rng.int(in: 1...64) : rng.int(in: 1...4096), original.count - at)
            let value: UInt8 = rng.bernoulli(0.5) ? 0 : 0xff
            for k in at..<(at + n) { bytes[k] = value }
            return (bytes, "fill \(n) bytes at \(at) with \(value)")
        case 6:
            let from = targets.position(&rng), to = targets.position(&rng)
            let n = min(rng.int(in: 1...1024), original.count - from, original.count - to)
            bytes.replaceSubrange(to..<(to + n), with: original[from..<(from + n)])
            return (bytes, "copy \(n) bytes from \(from) to \(to)")
        case 7:
            // Bytes removed or inserted in the middle: everything after shifts.
            let at = targets.position(&rng)
            let n = rng.int(in: 1...64)
            if rng.bernoulli(0.5) {
                bytes.removeSubrange(at..<min(at + n, bytes.count))
                return (bytes, "remove \(n) bytes at \(at)")
            }
            bytes.insert(contentsOf: (0..<n).map { _ in UInt8(rng.int(in: 0...255)) }, at: at)
            return (bytes, "insert \(n) bytes at \(at)")
        default:
            // The header's own fields, with its own checksum recomputed half of the time (so the
            // field itself is what is checked): magic, version, user block size, length, CRC-32.
            let fields: [(String, Int, Int)] = [("magic", 0, 8), ("version", 8, 4), ("user block size", 12, 4),
                                                ("length", 16, 8), ("checksum", 24, 4), ("header checksum", 28, 4)]
            let (name, at, width) = fields[rng.int(in: 0...(fields.count - 1))]
            let old = (0..<width).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
            let mask: UInt64 = width == 8 ? .max : (1 << (8 * UInt64(width))) - 1
            let candidates: [UInt64] = [0, mask, old &+ 1, old &- 1, old ^ (1 << UInt64(rng.int(in: 0...(8 * width - 1)))),
                                        old &+ 512, old &- 512, old &* 2, rng.next()]
            let value = candidates[rng.int(in: 0...(candidates.count - 1))] & mask
            for k in 0..<width { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
            let restamp = name != "header checksum" && rng.bernoulli(0.5)
            if restamp {
                bytes.withUnsafeMutableBytes { raw in
                    raw.storeBytes(of: 0, toByteOffset: 28, as: UInt32.self)
                    let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<CheckpointHeader.size]))
                    raw.storeBytes(of: crc.littleEndian, toByteOffset: 28, as: UInt32.self)
                }
            }
            return (bytes, "header \(name) \(old) -> \(value)\(restamp ? ", header checksum recomputed" : "")")
        }
    }
}

// MARK: - Helpers

/// A checkpoint with training state and seeded values.
private func fuzzCheckpoint(_ configuration: UNetConfiguration) -> Checkpoint {
    var rng = SeededGenerator(seed: 11, stream: 2)
    let n = configuration.parameterCount
    func values(_ scale: Double) -> [Float] { (0..<n).map { _ in Float(rng.uniform(-scale...scale)) } }
    let history = [EpochRecord(epoch: 1, loss: -0.5, dice: 0.5, valLoss: -0.25, valDice: 0.25, valKaggle: 0.5,
                               imagesPerSecond: 10, seconds: 1.5)]
    let state = TrainingState(epoch: 1, adamStep: 7, adamM: values(1e-3), adamV: values(1e-6).map(abs),
                              learningRate: 1e-4, mean: 100.5, std: 50.25, seed: 42, bestScore: -0.25, history: history)
    return Checkpoint(configuration: configuration, parameters: values(0.5), state: state)
}

private func seconds(since start: ContinuousClock.Instant) -> Double {
    let elapsed = (ContinuousClock.now - start).components
    return Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
}
