import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Outputs are written under a temporary name beside their destination and renamed into place
/// only when complete, so a reader never sees a partial file and a failure leaves nothing behind.
///
/// Several files that belong together (the .npy files of `unet prepare`) are staged first and
/// committed together: `stage` writes each to its temporary name; `commit` renames them all;
/// `discard` (also on deinit without commit) removes whatever was staged.
public final class StagedOutputs {
    private var staged: [(temporary: String, final: String)] = []
    private var committed = false

    public init() {}

    deinit {
        if !committed { discard() }
    }

    private static let counter = Atomic<Int>(0)

    /// The temporary name for `path`: same folder (so the rename is atomic), hidden, unique per
    /// process and per call (two threads staging the same path never share one).
    public static func temporaryPath(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let folder = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let serial = counter.add(1, ordering: .relaxed).newValue
        return "\(folder).\(name).tmp-\(getpid())-\(serial)"
    }

    /// Writes a file under its temporary name with `write`, which receives the temporary path.
    /// On failure the temporary file is removed and the error rethrown.
    public func stage(_ path: String, write: (String) throws -> Void) throws {
        let temporary = Self.temporaryPath(for: path)
        do {
            try write(temporary)
        } catch {
            unlink(temporary)
            throw error
        }
        staged.append((temporary, path))
    }

    /// Renames every staged file to its final name. If one rename fails, the files of this set
    /// already renamed are removed too, so a reader never finds a mix of new and old files.
    /// Each file is flushed to disk (fsync) first, so a crash after the rename cannot leave a
    /// complete-looking name over incomplete contents.
    public func commit() throws {
        for (temporary, final) in staged {
            let fd = open(temporary, O_RDONLY | O_CLOEXEC)
            let ok = fd >= 0 && fsync(fd) == 0
            let reason = ok ? "" : systemErrorText()
            if fd >= 0 { close(fd) }
            if !ok {
                discard()
                throw DataError(final, "cannot flush \(temporary) to disk: \(reason)")
            }
        }
        for (i, (temporary, final)) in staged.enumerated() {
            if rename(temporary, final) != 0 {
                let reason = systemErrorText()
                for (_, done) in staged[..<i] { unlink(done) }
                staged.removeFirst(i)
                discard()
                throw DataError(final, "cannot rename into place: \(reason)")
            }
        }
        staged.removeAll()
        committed = true
    }

    /// Removes every staged file that was not yet renamed.
    public func discard() {
        for (temporary, _) in staged { unlink(temporary) }
        staged.removeAll()
    }
}

/// Writes one file atomically: to a temporary name, then renamed over `path`.
public func writeAtomically(_ path: String, write: (String) throws -> Void) throws {
    let outputs = StagedOutputs()
    try outputs.stage(path, write: write)
    try outputs.commit()
}

/// Writes `contents` to `path` atomically: to a temporary name, flushed to disk, renamed over
/// `path`. A failure leaves the previous file as it was.
public func writeAtomically(_ path: String, contents: String) throws {
    try writeAtomically(path) { temporary in
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw DataError(path, "cannot create \(temporary): \(systemErrorText())") }
        var isOpen = true
        defer { if isOpen { close(fd) } }
        try Array(contents.utf8).withUnsafeBytes { try writeAll(fd, $0, path: path) }
        isOpen = false
        guard close(fd) == 0 else { throw DataError(path, "write error: \(systemErrorText())") }
    }
}
