import Checkpoint
import DataIO
import Distributed
import Foundation
import Kernels
import Model
import Synchronization
import Testing
import Training

/// Issue 7, points 1-3, in-process: the metrics log (`MetricsLog`), the step progress the bar
/// reads, and the timeline (`Timeline`) recorded by the trainer and rendered as a Chrome trace.
@Suite("Training output") struct TrainingOutputTests {
    // MARK: Metrics log

    @Test func metricsLogIsNamedBesideTheCheckpoint() {
        #expect(MetricsLog(besideCheckpoint: "unet.h5").path == "unet.csv")
        #expect(MetricsLog(besideCheckpoint: "out/run.1/unet.h5").path == "out/run.1/unet.csv")
        #expect(MetricsLog(besideCheckpoint: "out.d/unet").path == "out.d/unet.csv")
    }

    static let records = [
        EpochRecord(epoch: 1, loss: -0.015012345678, dice: 0.015012345678, valLoss: -0.0107, valDice: 0.0107, valKaggle: 0.0127,
                    imagesPerSecond: 9.625, seconds: 17.3, learningRate: 1e-5),
        EpochRecord(epoch: 2, loss: -0.25, dice: 0.25, imagesPerSecond: 10, seconds: 16.5),  // no validation, no lr recorded
    ]

    /// Header, one row per `append`, empty validation cells, every number read back exactly.
    @Test func metricsLogHeaderAndRows() throws {
        try withTemporaryDirectory { dir in
            let log = MetricsLog(path: dir + "/unet.csv")
            try log.start(with: [], learningRate: 1e-3)
            #expect(try text(log.path) == "epoch,loss,dice,val_loss,val_dice,val_kaggle_score,lr,images_per_s,seconds\n")
            for r in Self.records { try log.append(r, learningRate: 1e-3) }
            let rows = try cells(log.path)
            #expect(rows.count == 3 && rows.allSatisfy { $0.count == 9 })
            #expect(rows[1] == ["1", "-0.015012345678", "0.015012345678", "-0.0107", "0.0107", "0.0127", "1e-05", "9.625", "17.3"])
            #expect(rows[2] == ["2", "-0.25", "0.25", "", "", "", "0.001", "10.0", "16.5"])
            #expect(Double(rows[1][1]) == Self.records[0].loss && Float(rows[1][6]) == 1e-5)
            #expect(listing(dir) == ["unet.csv"])
        }
    }

    /// A run that starts rewrites the log from the checkpoint's history: rows after the
    /// checkpoint's epoch (a run that died before its checkpoint), a partial last line and
    /// duplicates are gone, and the history's rows are there even when the file was not.
    @Test func metricsLogStartsFromTheCheckpointsHistory() throws {
        try withTemporaryDirectory { dir in
            let log = MetricsLog(path: dir + "/unet.csv")
            try log.start(with: Self.records, learningRate: 1e-3)
            try log.append(EpochRecord(epoch: 3, loss: -0.3, dice: 0.3, imagesPerSecond: 1, seconds: 1), learningRate: 1e-3)
            let handle = try #require(FileHandle(forWritingAtPath: log.path))
            handle.seekToEndOfFile()
            handle.write(Data("4,-0.31,0.3".utf8))  // a crash in the middle of a row
            handle.closeFile()
            let before = try cells(log.path)
            #expect(before.count == 5 && before[4].count == 3)

            try log.start(with: Self.records, learningRate: 1e-3)  // resumed from epoch 2
            let after = try cells(log.path)
            #expect(after.map { $0[0] } == ["epoch", "1", "2"])
            #expect(after == Array(before[0..<3]))
            #expect(try text(log.path).hasSuffix("\n"))

            try FileManager.default.removeItem(atPath: log.path)
            try log.append(Self.records[0], learningRate: 1e-3)  // a log removed during a run is recreated with its header
            #expect(try cells(log.path).map { $0[0] } == ["epoch", "1"])
        }
    }

    @Test func metricsLogWriteFailureNamesTheFile() throws {
        let log = MetricsLog(path: "/nonexistent-folder/unet.csv")
        #expect(throws: DataError.self) { try log.start(with: [], learningRate: 1) }
        #expect(throws: DataError.self) { try log.append(Self.records[0], learningRate: 1) }
    }

    // MARK: Step progress

    /// After a resume in the middle of an epoch, the progress counts the epoch's images but the
    /// rate only those of this process.
    @Test func progressAfterAResumeCountsOnlyThisRunsImages() throws {
        let data = ReliabilityTests.data()  // 10 images, batches of 3: 4 steps
        let trainer = try ReliabilityTests.trainer()
        let resumed = EpochProgress(step: 2, weightedLoss: -1.5, images: 6, seconds: 100)
        var seen: [StepProgress] = []
        guard case .completed = try trainer.trainEpoch(data, epoch: 2, from: resumed, progress: { seen.append($0) }) else {
            Issue.record("stopped"); return
        }
        #expect(seen.map(\.step) == [3, 4] && seen.allSatisfy { $0.steps == 4 && $0.totalImages == 10 && $0.epoch == 2 })
        #expect(seen.map(\.images) == [9, 10] && seen.map(\.imagesThisRun) == [3, 4])
        let last = try #require(seen.last)
        let now = last.clock.end
        let elapsed = now - last.started
        #expect(elapsed > 0 && abs(last.imagesPerSecond(now: now) - 4 / elapsed) < 1e-9 * (4 / elapsed))
        #expect(last.secondsLeft(now: now) == 0)
        #expect(abs(last.dice + last.loss) == 0 && last.clock.total > 0 && last.clock.seconds(.forward) > 0 && last.clock.seconds(.backward) > 0)
        let first = seen[0]
        #expect(first.secondsLeft(now: first.clock.end).map { $0 > 0 } == true)
    }

    // MARK: Timeline

    /// The trainer records every step's nine spans (and validation) in its timeline without
    /// growing the reserved buffer, and the Chrome trace parses with every span nested.
    @Test func timelineRecordsEveryStep() throws {
        let data = ReliabilityTests.data()
        let trainer = try ReliabilityTests.trainer()
        let timeline = Timeline(rank: 0)
        trainer.timeline = timeline
        for epoch in 1...2 {
            _ = try trainer.trainEpoch(data, epoch: epoch)
            _ = try trainer.evaluate(data)
        }
        #expect(timeline.dropped == 0)
        let events = timeline.events
        #expect(events.count == 2 * (4 * Timeline.eventsPerStep + 1))
        #expect(events.filter { $0.kind == .validation }.map(\.epoch) == [1, 2])
        let trace = Timeline.chromeTrace(events, ranks: 1, metadata: [("command", "test \"quoted\"\n")])
        let problems = traceProblems(Data(trace.utf8), ranks: 1, epochs: 1...2, steps: 4)
        #expect(problems.isEmpty, "\(problems)")
        let all = try comm1.gather(events)
        #expect(all == events)
        // The check itself catches a phase that ends after its step.
        var broken = events
        let i = try #require(broken.firstIndex { $0.kind == .backward && $0.step == 2 })
        broken[i].end += 1
        #expect(traceProblems(Data(Timeline.chromeTrace(broken, ranks: 1).utf8), ranks: 1, epochs: 1...2, steps: 4)
            == ["rank 0, epoch 1, step 2: backward is not inside its step after the previous phase",
                "rank 0, epoch 1, step 2: allreduce is not inside its step after the previous phase"])
        #expect(traceProblems(Data("{\"traceEvents\":[".utf8), ranks: 1, epochs: 1...1, steps: 1) == ["not a JSON object with traceEvents"])
    }

    /// A full buffer drops whole steps (counted), never allocates in a step.
    @Test func timelineDropsStepsWhenFull() {
        let timeline = Timeline(rank: 0, capacity: 0)
        let before = timeline.events.capacity
        var clock = StepClock()
        clock.end = 1
        for step in 1...1000 { timeline.record(clock, epoch: 1, step: step) }
        #expect(timeline.events.capacity == before)
        #expect(timeline.dropped == 1000 - timeline.events.count / Timeline.eventsPerStep)
        timeline.reserve(steps: 3)
        let reserved = timeline.events.capacity
        for step in 1...3 { timeline.record(clock, epoch: 2, step: step) }
        #expect(timeline.events.capacity == reserved && timeline.events.count >= 3 * Timeline.eventsPerStep)
    }

    let comm1 = SoloCommunicator()
}

extension CommunicatorTests {
    /// The bytes gather: rank r sends r + 1 records; the root gets them in rank order.
    @Test func gatherRecordsInRankOrder() throws {
        let mine = (0...comm.rank).map { TimelineEvent(.forward, rank: comm.rank, epoch: $0, step: 1, start: Double($0), end: 0.5) }
        let expected = (0..<comm.size).flatMap { r in
            (0...r).map { TimelineEvent(.forward, rank: r, epoch: $0, step: 1, start: Double($0), end: 0.5) }
        }
        for root in 0..<comm.size {
            let all = try comm.gather(mine, root: root)
            #expect(all == (comm.rank == root ? expected : []))
        }
        let nothing = try comm.gather([TimelineEvent](), root: 0)
        #expect(nothing.isEmpty)
    }

    /// Two epochs with a timeline on every rank, gathered to rank 0 after each: a trace with
    /// every rank's steps (under mpirun -np 2: both ranks, whose shares differ).
    @Test func timelineGathersEveryRank() throws {
        let data = Self.samples(11)
        let trainer = try trainer(batch: 5, comm)  // 3 steps: 3 + 2, 3 + 2, 1 + 0
        try trainer.broadcastState()
        let timeline = try Timeline.synchronized(over: comm)
        trainer.timeline = timeline
        var events: [TimelineEvent] = []
        for epoch in 1...2 {
            _ = try trainer.trainEpoch(data, epoch: epoch)
            try trainer.checkReplicas()
            events += try timeline.gather(over: comm, epoch: epoch)
        }
        guard comm.isRoot else { #expect(events.isEmpty); return }
        #expect(timeline.dropped == 0)
        #expect(Set(events.map(\.rank)) == Set((0..<comm.size).map(Int32.init)))
        let problems = traceProblems(Data(Timeline.chromeTrace(events, ranks: comm.size).utf8), ranks: comm.size, epochs: 1...2, steps: 3)
        #expect(problems.isEmpty, "\(problems)")
    }
}

/// What is wrong with a Chrome trace (empty when nothing): it must parse as JSON (Foundation's
/// parser), name the processes of `ranks` ranks, and hold for every rank, epoch and step a
/// `step` span with its eight phases inside it, in order; every span with a non-negative
/// start and duration, on thread 0, with a category.
func traceProblems(_ data: Data, ranks: Int, epochs: ClosedRange<Int>, steps: Int) -> [String] {
    guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let events = object["traceEvents"] as? [[String: Any]] else { return ["not a JSON object with traceEvents"] }
    var problems: [String] = []
    let names = Set(events.filter { $0["ph"] as? String == "M" && $0["name"] as? String == "process_name" }
        .compactMap { ($0["args"] as? [String: Any])?["name"] as? String })
    if names != Set((0..<ranks).map { "rank \($0)" }) { problems.append("process names \(names.sorted())") }
    struct Span { var name: String; var ts: Double; var dur: Double }
    var byStep: [[Int]: [Span]] = [:]
    for e in events where e["ph"] as? String == "X" {
        let args = e["args"] as? [String: Any] ?? [:]
        let span = Span(name: e["name"] as? String ?? "", ts: e["ts"] as? Double ?? .nan, dur: e["dur"] as? Double ?? .nan)
        if !(span.dur >= 0 && span.ts >= 0 && e["tid"] as? Int == 0 && e["cat"] is String) { problems.append("bad event \(e)") }
        guard let step = args["step"] as? Int, step > 0 else { continue }
        byStep[[e["pid"] as? Int ?? -1, args["epoch"] as? Int ?? -1, step], default: []].append(span)
    }
    let phases = ["load", "forward", "loss", "wait", "loss_gradient", "backward", "allreduce", "adam"]
    for rank in 0..<ranks {
        for epoch in epochs {
            for step in 1...steps {
                let at = "rank \(rank), epoch \(epoch), step \(step)"
                let spans = byStep[[rank, epoch, step]] ?? []
                guard let whole = spans.first(where: { $0.name == "step" }) else { problems.append("no step span for \(at)"); continue }
                let inner = spans.filter { $0.name != "step" }
                if inner.map(\.name) != phases { problems.append("\(at): phases \(inner.map(\.name))") }
                var previousEnd = whole.ts
                for s in inner {
                    // Printed to the nanosecond; 1e-3 µs allows for parsing the decimals.
                    if !(s.ts >= previousEnd - 1e-3 && s.ts + s.dur <= whole.ts + whole.dur + 1e-3) {
                        problems.append("\(at): \(s.name) is not inside its step after the previous phase")
                    }
                    previousEnd = s.ts + s.dur
                }
            }
        }
    }
    if byStep.count != ranks * epochs.count * steps { problems.append("\(byStep.count) steps, expected \(ranks * epochs.count * steps)") }
    return problems
}

private func text(_ path: String) throws -> String { String(decoding: try readBytes(path), as: UTF8.self) }

private func cells(_ path: String) throws -> [[String]] {
    try text(path).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
}
