import Checkpoint
import Training
import DataIO
import Foundation
import Model
import Random
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Checkpoints on a real full disk and a real read-only one: a small tmpfs that the test mounts
/// (and unmounts) itself. Writing a checkpoint that does not fit fails with one line ending in
/// "No space left on device", leaves the previous checkpoint byte-identical and loadable, and gives
/// the space of its temporary file back; on a read-only remount, "Read-only file system".
///
/// Mounting needs root (or CAP_SYS_ADMIN): without it these tests are skipped, saying why
/// (`CheckpointTests.simulatedWriteFailureKeepsThePreviousCheckpoint` covers the same failures
/// everywhere by simulation).
@Suite("Checkpoint on a full or read-only disk")
struct CheckpointDiskTests {
    /// Why a tmpfs cannot be mounted here, or nil when it can (tried once, on a scratch folder).
    static let mountProblem: String? = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unet-mount-probe-\(getpid())").path
        guard mkdir(dir, 0o700) == 0 else { return "cannot create \(dir): \(String(cString: strerror(errno)))" }
        defer { rmdir(dir) }
        guard mount("tmpfs", dir, "tmpfs", 0, "size=64k") == 0 else {
            return "mount -t tmpfs: \(String(cString: strerror(errno))) (needs root or CAP_SYS_ADMIN)"
        }
        umount2(dir, Int32(MNT_DETACH))
        return nil
    }()

    static let small = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 2, upsample: .nearest)
    /// 120,681 parameters: about 1.45 MB with Adam's moments, more than the 1 MiB disk.
    static let large = UNetConfiguration(rows: 64, cols: 80, filters: 8, depth: 3, upsample: .transpose)

    @Test(.enabled(if: mountProblem == nil, Comment(rawValue: mountProblem ?? "")))
    func fullDiskKeepsThePreviousCheckpoint() throws {
        try withTmpfs(bytes: 1 << 20) { disk in
            let path = disk + "/unet.h5"
            let previous = diskCheckpoint(Self.small, seed: 1)
            try previous.write(to: path)
            let before = try readBytes(path)
            let free = availableBytes(disk)

            let error = #expect(throws: DataError.self) { try diskCheckpoint(Self.large, seed: 2).write(to: path) }
            let text = error?.description ?? ""
            #expect(text.hasPrefix(path + ": cannot write temporary file \(disk)/.unet.h5.tmp-"), "\(text)")
            #expect(text.hasSuffix(": No space left on device (the previous file is unchanged)"), "\(text)")
            #expect(listing(disk) == ["unet.h5"])
            #expect(availableBytes(disk) == free)  // the temporary file's space is back
            #expect(try readBytes(path) == before)
            #expect(try Checkpoint.read(from: path) == previous)

            // A checkpoint that fits still replaces it.
            let next = diskCheckpoint(Self.small, seed: 3)
            try next.write(to: path)
            #expect(try Checkpoint.read(from: path) == next)
            #expect(listing(disk) == ["unet.h5"])
        }
    }

    @Test(.enabled(if: mountProblem == nil, Comment(rawValue: mountProblem ?? "")))
    func readOnlyDiskKeepsThePreviousCheckpoint() throws {
        try withTmpfs(bytes: 1 << 20) { disk in
            let path = disk + "/unet.h5"
            let previous = diskCheckpoint(Self.small, seed: 1)
            try previous.write(to: path)
            let before = try readBytes(path)
            guard mount("tmpfs", disk, nil, UInt(MS_REMOUNT | MS_RDONLY), nil) == 0 else {
                Issue.record("mount -o remount,ro \(disk): \(String(cString: strerror(errno)))")
                return
            }
            let error = #expect(throws: DataError.self) { try diskCheckpoint(Self.small, seed: 2).write(to: path) }
            let text = error?.description ?? ""
            #expect(text.hasPrefix(path + ": cannot create temporary file \(disk)/.unet.h5.tmp-"), "\(text)")
            #expect(text.hasSuffix(": Read-only file system (the previous file is unchanged)"), "\(text)")
            #expect(listing(disk) == ["unet.h5"])
            #expect(try readBytes(path) == before)
            #expect(try Checkpoint.read(from: path) == previous)
        }
    }
}

/// Mounts a tmpfs of `bytes` on a fresh folder, runs `body` with it, unmounts it.
private func withTmpfs(bytes: Int, _ body: (String) throws -> Void) throws {
    try withTemporaryDirectory { dir in
        let disk = dir + "/disk"
        guard mkdir(disk, 0o755) == 0, mount("tmpfs", disk, "tmpfs", 0, "size=\(bytes),mode=755") == 0 else {
            Issue.record("cannot mount a tmpfs on \(disk): \(String(cString: strerror(errno)))")
            return
        }
        defer { umount2(disk, Int32(MNT_DETACH)) }
        try body(disk)
    }
}

private func availableBytes(_ path: String) -> Int {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return -1 }
    return Int(info.f_bavail) * Int(info.f_frsize)
}

/// A checkpoint with training state and seeded values.
private func diskCheckpoint(_ configuration: UNetConfiguration, seed: UInt64) -> Checkpoint {
    var rng = SeededGenerator(seed: seed)
    let n = configuration.parameterCount
    func values() -> [Float] { (0..<n).map { _ in Float(rng.uniform(-0.5...0.5)) } }
    let state = TrainingState(epoch: Int(seed), adamStep: 10, adamM: values(), adamV: values().map(abs), learningRate: 1e-4,
                              mean: 90, std: 40, seed: seed, bestScore: -0.5,
                              history: [EpochRecord(epoch: 1, loss: -0.5, dice: 0.5, imagesPerSecond: 1, seconds: 1)])
    return Checkpoint(configuration: configuration, parameters: values(), state: state)
}
