import Distributed
import Kernels

/// What a span of a rank's time was spent on (the timeline's event names).
public enum TimelinePhase: Int32, CaseIterable, Sendable {
    /// One training step, from loading the batch to the end of the Adam update: the step's
    /// phases (`StepPhase`, the next eight cases, in its order) lie inside it.
    case step
    case load, forward, loss, wait, lossGradient, backward, allreduce, adam
    /// The validation pass after an epoch (forward passes and a small allreduce per batch).
    case validation
    /// Rank 0 writing the checkpoints and the metrics log (the other ranks go on to the next
    /// collective and wait there).
    case checkpoint
    /// The replicas' weight fingerprint check after an epoch (a broadcast and an allreduce).
    case replicaCheck
    /// Rank 0 reading and preprocessing the data folder (and the checkpoint) at the start.
    case readData
    /// Broadcasting the data and the starting state from rank 0 at the start.
    case broadcast
    /// Gathering the timeline's events to rank 0 (once per epoch).
    case gather

    /// A step's phase.
    public init(_ phase: StepPhase) {
        self.init(rawValue: TimelinePhase.step.rawValue + 1 + Int32(phase.rawValue))!
    }

    /// The step phase this is, if it is one.
    public var stepPhase: StepPhase? {
        StepPhase(rawValue: Int(rawValue - TimelinePhase.step.rawValue - 1))
    }

    /// The event's name in the trace.
    public var name: String {
        if let stepPhase { return stepPhase.name }
        return switch self {
        case .step: "step"
        case .validation: "validation"
        case .checkpoint: "checkpoint"
        case .replicaCheck: "replica_check"
        case .readData: "read_data"
        case .broadcast: "broadcast"
        case .gather: "timeline_gather"
        case .load, .forward, .loss, .wait, .lossGradient, .backward, .allreduce, .adam: stepPhase!.name
        }
    }

    /// The event's category in the trace: where the time goes.
    public var category: String {
        switch self {
        case .step: "step"
        case .forward, .loss, .lossGradient, .backward, .adam: "compute"
        case .wait: "waiting"
        case .allreduce, .broadcast, .replicaCheck, .gather: "communication"
        case .load, .readData, .checkpoint: "io"
        case .validation: "validation"
        }
    }
}

/// One span of one rank's time: `start` and `end` in seconds since the timeline's origin.
/// Plain values of a fixed layout, so a rank's events travel to rank 0 as bytes.
public struct TimelineEvent: Equatable, Sendable, BitwiseCopyable {
    public var phase: Int32
    public var rank: Int32
    public var epoch: Int32
    /// 1-based step within the epoch (0 for spans outside a step).
    public var step: Int32
    public var start: Double
    public var end: Double

    public init(_ phase: TimelinePhase, rank: Int, epoch: Int, step: Int, start: Double, end: Double) {
        self.phase = phase.rawValue
        self.rank = Int32(truncatingIfNeeded: rank)
        self.epoch = Int32(truncatingIfNeeded: epoch)
        self.step = Int32(truncatingIfNeeded: step)
        self.start = start
        self.end = end
    }

    public var kind: TimelinePhase? { TimelinePhase(rawValue: phase) }
}

/// Where each rank's time goes, span by span, in the manner of Horovod's timeline: every rank
/// records its spans into a buffer reserved before each epoch (recording allocates nothing),
/// `gather` brings them to rank 0 once per epoch, and `chromeTrace` renders them as Chrome's
/// Trace Event JSON (chrome://tracing, https://ui.perfetto.dev): one process per rank, the
/// spans of a step nested in the step's span.
///
/// Times are seconds on each rank's monotonic clock minus its `origin`, taken right after a
/// barrier (`synchronized`), so the ranks' axes agree to within the barrier's exit skew
/// (microseconds on one machine; tens of microseconds over TCP).
public final class Timeline {
    public let rank: Int
    /// The monotonic clock reading that is time 0.
    public let origin: Double
    /// This rank's events since the last `gather`.
    public private(set) var events: [TimelineEvent] = []
    /// Steps not recorded because the reserved buffer was full (none when every epoch reserves
    /// room for its steps, as `Trainer.trainEpoch` does).
    public private(set) var dropped = 0

    /// The events of a training step (`step` and its phases).
    public static let eventsPerStep = 1 + StepPhase.allCases.count

    public init(rank: Int, origin: Double = monotonicSeconds(), capacity: Int = 256) {
        self.rank = rank
        self.origin = origin
        events.reserveCapacity(capacity)
    }

    /// A timeline whose origin every rank takes right after the same barrier.
    public static func synchronized(over comm: any Communicator) throws -> Timeline {
        try comm.barrier()
        return Timeline(rank: comm.rank)
    }

    /// Makes room for `steps` more training steps and a few spans besides (call before a loop
    /// of steps: recording a step never allocates).
    public func reserve(steps: Int) {
        let needed = events.count + steps * Self.eventsPerStep + 32
        if events.capacity < needed { events.reserveCapacity(needed) }
    }

    /// Records a span between two monotonic clock readings (for spans once per epoch or
    /// outside training: it grows the buffer when full).
    public func record(_ phase: TimelinePhase, epoch: Int, step: Int = 0, from start: Double, to end: Double) {
        append(phase, epoch, step, start, end)
    }

    @inline(__always)
    private func append(_ phase: TimelinePhase, _ epoch: Int, _ step: Int, _ start: Double, _ end: Double) {
        events.append(TimelineEvent(phase, rank: rank, epoch: epoch, step: step, start: start - origin, end: end - origin))
    }

    /// Records a training step's spans from its clock readings, into the reserved buffer: when
    /// it is full the step is counted in `dropped` instead (never an allocation in a step).
    public func record(_ clock: StepClock, epoch: Int, step: Int) {
        guard events.count + Self.eventsPerStep <= events.capacity else { dropped += 1; return }
        append(.step, epoch, step, clock.start, clock.end)
        for phase in StepPhase.allCases {
            let span = clock.span(phase)
            append(TimelinePhase(phase), epoch, step, span.start, span.end)
        }
    }

    /// Times `body` as one span.
    public func measure<T>(_ phase: TimelinePhase, epoch: Int, step: Int = 0, _ body: () throws -> T) rethrows -> T {
        let start = monotonicSeconds()
        defer { record(phase, epoch: epoch, step: step, from: start, to: monotonicSeconds()) }
        return try body()
    }

    /// Every rank's events since the last gather, on `root` in rank order (empty elsewhere);
    /// empties this rank's buffer, keeping its capacity. A collective: every rank calls it.
    /// The gather itself is recorded as a span, in the next gather's events.
    public func gather(over comm: any Communicator, epoch: Int, root: Int = 0) throws -> [TimelineEvent] {
        let start = monotonicSeconds()
        let all = try comm.gather(events, root: root)
        events.removeAll(keepingCapacity: true)
        record(.gather, epoch: epoch, from: start, to: monotonicSeconds())
        return all
    }

    /// Chrome's Trace Event Format, JSON object form: complete events (`"ph":"X"`) with `ts`
    /// and `dur` in microseconds, `pid` the rank, `tid` 0, `cat` the phase's category and
    /// `args` the epoch and step; metadata events name each process "rank R".
    /// `ranks` names the processes; `metadata` goes to `otherData` (string values).
    public static func chromeTrace(_ events: [TimelineEvent], ranks: Int, metadata: [(String, String)] = []) -> String {
        var out = "{\"displayTimeUnit\":\"ms\",\"otherData\":{"
        out += metadata.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",")
        out += "},\"traceEvents\":[\n"
        var first = true
        func add(_ line: String) {
            if !first { out += ",\n" }
            first = false
            out += line
        }
        for r in 0..<ranks {
            add("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":\(r),\"tid\":0,\"args\":{\"name\":\"rank \(r)\"}}")
            add("{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":\(r),\"tid\":0,\"args\":{\"sort_index\":\(r)}}")
        }
        for e in events {
            guard let kind = e.kind else { continue }
            // Whole nanoseconds from the origin, then the difference: spans that share a clock
            // reading share its printed value, so nesting survives the rounding.
            let start = nanoseconds(e.start), end = max(nanoseconds(e.end), start)
            var line = "{\"name\":\"\(kind.name)\",\"cat\":\"\(kind.category)\",\"ph\":\"X\",\"ts\":\(microseconds(start)),"
            line += "\"dur\":\(microseconds(end - start)),\"pid\":\(e.rank),\"tid\":0,\"args\":{\"epoch\":\(e.epoch)"
            if e.step > 0 { line += ",\"step\":\(e.step)" }
            line += "}}"
            add(line)
        }
        out += "\n]}\n"
        return out
    }

    private static func nanoseconds(_ seconds: Double) -> Int64 {
        guard seconds.isFinite else { return 0 }
        return Int64((seconds * 1e9).rounded())
    }

    /// `ns` as microseconds with three decimals ("12.345").
    private static func microseconds(_ ns: Int64) -> String {
        let sign = ns < 0 ? "-" : ""
        let magnitude = ns.magnitude
        let fraction = String(magnitude % 1000)
        return "\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)"
    }

    /// A JSON string literal.
    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
