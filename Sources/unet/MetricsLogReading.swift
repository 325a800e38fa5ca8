import Checkpoint
import Training
import DataIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

extension MetricsLog {
    /// What `read` found: the rows, and whether a last line cut short was left out.
    struct Contents {
        var records: [EpochRecord]
        /// The file ended in the middle of a row (a run killed while appending; the next run
        /// rewrites the log from its checkpoint): that row is not in `records`.
        var droppedPartialRow = false
    }

    /// Reads the log as `unet train` writes it (`header`, then one row per epoch, epochs
    /// increasing). A last line without its newline that does not parse is a row cut short
    /// and left out. Anything else wrong — another header, a cell that is not a number, a
    /// row of another length, epochs out of order — is a `DataError` naming the file and the
    /// line. A missing file throws too: check `fileExists` first when it is optional.
    func read() throws -> Contents {
        let text = try readSmallTextFile(path, what: "the metrics log")
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let complete = text.hasSuffix("\n")
        if complete { lines.removeLast() }  // after the last newline
        guard let header = lines.first, !text.isEmpty else { throw DataError(path, "empty: no header") }
        guard header == Self.header else {
            throw DataError(path, "line 1: not the header of a metrics log written by unet train"
                + " (expected \(Self.header))")
        }
        var contents = Contents(records: [])
        for (n, line) in lines.enumerated().dropFirst() {
            do {
                let record = try Self.parse(line)
                if let previous = contents.records.last, record.epoch <= previous.epoch {
                    throw DataError(path, "line \(n + 1): epoch \(record.epoch) after epoch \(previous.epoch)")
                }
                contents.records.append(record)
            } catch let problem as RowProblem {
                if n == lines.count - 1 && !complete {
                    contents.droppedPartialRow = true
                } else {
                    throw DataError(path, "line \(n + 1): \(problem.text)")
                }
            }
        }
        return contents
    }

    /// What is wrong with a row.
    private struct RowProblem: Error {
        let text: String
        init(_ text: String) { self.text = text }
    }

    /// One row.
    private static func parse(_ line: String) throws(RowProblem) -> EpochRecord {
        let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard cells.count == columns.count else {
            throw RowProblem("\(cells.count) cells, the header has \(columns.count)")
        }
        func number(_ k: Int) throws(RowProblem) -> Double {
            guard let x = Double(cells[k]) else { throw RowProblem("\(columns[k]) '\(cells[k].prefix(40))' is not a number") }
            return x
        }
        func optional(_ k: Int) throws(RowProblem) -> Double? { cells[k].isEmpty ? nil : try number(k) }
        guard let epoch = Int(cells[0]), epoch >= 1 else {
            throw RowProblem("epoch '\(cells[0].prefix(40))' is not a number from 1")
        }
        let lr = try optional(6)
        return EpochRecord(epoch: epoch, loss: try number(1), dice: try number(2), valLoss: try optional(3),
                           valDice: try optional(4), valKaggle: try optional(5), imagesPerSecond: try number(7),
                           seconds: try number(8), learningRate: lr.map { Float($0) })
    }
}

/// The whole of a small text file (at most `limit` bytes, UTF-8); a problem is one line naming
/// `path` and saying what it was meant to be.
func readSmallTextFile(_ path: String, what: String, limit: Int = 64 << 20) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw DataError(path, "cannot open \(what): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw DataError(path, "not a regular file") }
    guard Int(info.st_size) <= limit else { throw DataError(path, "\(info.st_size) bytes: too large for \(what)") }
    var bytes = [UInt8](repeating: 0, count: Int(info.st_size))
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw DataError(path, "read error: \(String(cString: strerror(errno)))") }
        if n == 0 { break }
        done += n
    }
    guard let text = String(validating: bytes[..<done], as: UTF8.self) else {
        throw DataError(path, "not UTF-8 text: not \(what)")
    }
    return text
}
