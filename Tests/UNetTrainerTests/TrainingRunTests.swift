import Distributed
import Model
import Synchronization
import Testing
import Training

/// `TrainingRun`'s policy, through a store that keeps what it is given in memory: the order of
/// the saves, which epoch is the best, the position saved on a stop and a resume from it.
@Suite("Training run") struct TrainingRunTests {
    final class MemoryStore: RunStore, @unchecked Sendable {
        var calls: [String] = []
        var latest: (parameters: [Float], state: TrainingState)? = nil
        var best: (parameters: [Float], state: TrainingState)? = nil
        var log: [EpochRecord] = []
        func saveLatest(parameters: [Float], state: TrainingState) throws {
            calls.append("latest \(state.epoch)"); latest = (parameters, state)
        }
        func saveBest(parameters: [Float], state: TrainingState) throws {
            calls.append("best \(state.epoch)"); best = (parameters, state)
        }
        func startLog(with history: [EpochRecord], learningRate: Float) throws {
            calls.append("log from \(history.count)"); log = history
        }
        func appendLog(_ record: EpochRecord, learningRate: Float) throws {
            calls.append("row \(record.epoch)"); log.append(record)
        }
    }

    static func run(store: MemoryStore, resumed: (parameters: [Float], state: TrainingState)? = nil) throws -> TrainingRun {
        let start = try TrainingRun.Start.agreed(seed: 2, resuming: resumed?.state, over: SoloCommunicator())
        let trainer = try ReliabilityTests.trainer()
        return try TrainingRun(trainer: trainer, start: start, learningRate: 3e-3, normalisation: (0.5, 2),
                               resumed: resumed, store: store)
    }

    /// Every epoch saves the latest state, then the best when its validation loss is the lowest
    /// so far, then the log's row; the best's state and the run's history agree with the log.
    @Test func savesInOrderAndKeepsTheBest() throws {
        let data = ReliabilityTests.data(), validation = ReliabilityTests.data(count: 4)
        let store = MemoryStore()
        let run = try Self.run(store: store)
        var expected = ["log from 0"], lowest = Double.infinity
        for epoch in 1...4 {
            guard case .completed(let end) = try run.trainEpoch(data, validation: validation) else {
                Issue.record("stopped"); return
            }
            let score = try #require(end.record.valLoss)
            #expect(end.improved == (score < lowest))
            expected += ["latest \(epoch)"] + (score < lowest ? ["best \(epoch)"] : []) + ["row \(epoch)"]
            lowest = min(lowest, score)
        }
        #expect(store.calls == expected)
        #expect(run.epochsDone == 4 && run.best == lowest && store.log == run.history)
        #expect(store.latest?.state == run.state() && store.latest?.parameters == run.model.parameters)
        #expect(store.best?.state.bestScore == lowest && store.best?.state.mean == 0.5 && store.best?.state.std == 2)
    }

    /// A stop after step 2 of epoch 2 saves the latest state with that position (epoch 1 done)
    /// and no row (epoch 1, the only one so far, is the best); a run resumed from it ends epoch
    /// 2 as the run that never stopped.
    @Test func stopSavesThePositionAndResumesFromIt() throws {
        let data = ReliabilityTests.data(), none = Samples(rows: 16, cols: 16, images: [])
        let straight = try Self.run(store: MemoryStore())
        for _ in 1...2 { _ = try straight.trainEpoch(data, validation: none) }

        let store = MemoryStore()
        let first = try Self.run(store: store)
        _ = try first.trainEpoch(data, validation: none)
        let steps = Mutex(0)
        first.trainer.stopRequested = { steps.withLock { $0 += 1; return $0 == 2 } }
        guard case .stopped(let at) = try first.trainEpoch(data, validation: none) else { Issue.record("did not stop"); return }
        #expect(at.step == 2 && store.calls == ["log from 0", "latest 1", "best 1", "row 1", "latest 1"])
        let saved = try #require(store.latest)
        #expect(saved.state.epoch == 1 && saved.state.epochStep == 2 && saved.state.history.count == 1)

        let second = try Self.run(store: MemoryStore(), resumed: saved)
        #expect(second.epochsDone == 1 && second.position == at)
        guard case .completed(let end) = try second.trainEpoch(data, validation: none) else { Issue.record("stopped"); return }
        #expect(second.model.parameters == straight.model.parameters && second.trainer.adam.m == straight.trainer.adam.m)
        #expect(end.record.loss == straight.history[1].loss && second.history.map(\.loss) == straight.history.map(\.loss))
    }
}
