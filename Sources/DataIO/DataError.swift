#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A problem with one file: printed as a single line, `<path>: <problem>`.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

/// The text of `errno` (for messages about failed system calls).
func systemErrorText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
