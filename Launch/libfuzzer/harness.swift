// libFuzzer entry point for the DataIO readers (built by Launch/libfuzzer/run.sh with
// `swiftc -sanitize=fuzzer,address` together with Sources/DataIO, as one module).
// Each input is written to a file and read as a TIFF and as .npy files; a result or a one-line
// DataError naming the file is fine, anything else (a trap, an ASan report, a non-DataError, a
// multi-line message, an allocation beyond -malloc_limit_mb) is a finding.
#if canImport(Glibc)
import Glibc
#endif

private func expectOneLineDataError(_ path: String, _ read: () throws -> Void) {
    do {
        try read()
    } catch let error as DataError {
        precondition(error.path == path && !error.description.contains(where: { $0.isNewline }), "\(error)")
    } catch {
        fatalError("not a DataError: \(error)")
    }
}

private let inputPath = (getenv("UNET_LIBFUZZER_DIR").map { String(cString: $0) } ?? "/tmp") + "/input-\(getpid())"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let path = inputPath
    unlink(path)
    let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    precondition(fd >= 0, "cannot create \(path)")
    precondition(write(fd, data, size) == size)
    close(fd)
    expectOneLineDataError(path) { _ = try TIFF.read(path) }
    expectOneLineDataError(path) { _ = try NPY.loadImageStack(path) }
    expectOneLineDataError(path) { _ = try NPY.load(path, as: Float.self) }
    expectOneLineDataError(path) { _ = try NPY.load(path, as: Int32.self) }
    return 0
}
