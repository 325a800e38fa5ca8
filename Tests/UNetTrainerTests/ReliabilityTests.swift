import Distributed
import Kernels
import Model
import Random
import Synchronization
import Testing
import Training

/// Issue 6's in-process parts: a stop request mid-epoch and its resume, non-finite numbers, the
/// stall watchdog. The multi-rank and signal parts run in Launch/test-reliability.sh.
@Suite("Reliability") struct ReliabilityTests {
    static let configuration = UNetConfiguration(rows: 16, cols: 16, filters: 4, depth: 2)

    static func data(count n: Int = 10) -> Samples {
        var rng = SeededGenerator(seed: 8)
        var images = [Float](), masks = [Float]()
        for i in 0..<n {
            for p in 0..<256 {
                let (y, x) = (p / 16, p % 16)
                let inside = i % 2 == 0 && (y - 8) * (y - 8) + (x - 7) * (x - 7) < 16
                masks.append(inside ? 1 : 0)
                images.append((inside ? -1 : 0.5) + Float(rng.normal(standardDeviation: 0.3)))
            }
        }
        return Samples(rows: 16, cols: 16, images: images, masks: masks)
    }

    static func trainer() throws -> Trainer {
        let model = try UNet(configuration: configuration, seed: 1, maxBatch: 3)
        return Trainer(model: model, adam: Adam(parameterCount: configuration.parameterCount, learningRate: 3e-3),
                       batchSize: 3, seed: 2)
    }

    /// Stopped after step 2 of epoch 2 (of 4 steps), then continued from the recorded position
    /// on a fresh trainer with the saved weights and Adam state: the same weights, Adam state and
    /// epoch figures as the run never stopped.
    @Test func stoppedEpochResumesToTheSameResult() throws {
        let data = Self.data()
        let straight = try Self.trainer()
        var straightMetrics: [PassMetrics] = []
        for epoch in 1...2 {
            guard case .completed(let m) = try straight.trainEpoch(data, epoch: epoch) else { Issue.record("stopped"); return }
            straightMetrics.append(m)
        }

        let first = try Self.trainer()
        _ = try first.trainEpoch(data, epoch: 1)
        let steps = Mutex(0)
        first.stopRequested = { steps.withLock { $0 += 1; return $0 == 2 } }
        guard case .stopped(let at) = try first.trainEpoch(data, epoch: 2) else { Issue.record("did not stop"); return }
        #expect(at.step == 2 && at.images == 6 && first.adam.step == 6)

        let second = try Self.trainer()
        second.model.parameters = first.model.parameters
        second.adam = first.adam
        guard case .completed(let m) = try second.trainEpoch(data, epoch: 2, from: at) else { Issue.record("stopped"); return }
        let sameWeights = second.model.parameters == straight.model.parameters
        let sameAdam = second.adam.m == straight.adam.m && second.adam.v == straight.adam.v
        #expect(sameWeights && sameAdam && second.adam.step == straight.adam.step)
        #expect(m.loss == straightMetrics[1].loss && m.images == 10)
    }

    /// A stop requested at the last step of an epoch completes the epoch (nothing left to resume).
    @Test func stopAtTheLastStepCompletesTheEpoch() throws {
        let trainer = try Self.trainer()
        let steps = Mutex(0)
        trainer.stopRequested = { steps.withLock { $0 += 1; return $0 == 4 } }
        guard case .completed = try trainer.trainEpoch(Self.data(), epoch: 1) else { Issue.record("stopped"); return }
        #expect(trainer.stopAgreed)
    }

    /// A NaN in the summed gradients stops training with the parameter's Keras name, before Adam
    /// touches the weights.
    @Test func nonFiniteGradientStopsBeforeTheUpdate() throws {
        let trainer = try Self.trainer()
        let view = Self.configuration.parameterTable[4]  // conv2d_2/kernel
        trainer.gradientHook = { $0[view.offset + 3] = .nan }
        let before = trainer.model.parameters
        #expect {
            _ = try trainer.trainEpoch(Self.data(), epoch: 1)
        } throws: { error in
            let text = "\(error)"
            return text.contains(view.kerasName) && text.contains("nan") && text.contains("Adam step 1")
        }
        let unchanged = trainer.model.parameters == before
        #expect(unchanged && trainer.adam.step == 0)
    }

    /// A NaN in the input reaches the loss, which stops training at once.
    @Test func nonFiniteLossStopsTraining() throws {
        var data = Self.data()
        for i in 0..<data.count { data.images[i * 256 + 17] = .infinity }  // whichever batch comes first
        let trainer = try Self.trainer()
        let before = trainer.model.parameters
        #expect(throws: TrainingError.self) { _ = try trainer.trainEpoch(data, epoch: 1) }
        let unchanged = trainer.model.parameters == before
        #expect(unchanged)
    }

    @Test func firstNonFiniteFindsTheIndex() {
        var values = [Float](repeating: 1.5, count: 1000)
        #expect(values.withUnsafeBufferPointer { firstNonFinite($0) } == nil)
        for (i, bad) in [(0, Float.nan), (511, .infinity), (999, -.infinity), (995, .signalingNaN)] {
            var copy = values
            copy[i] = bad
            #expect(copy.withUnsafeBufferPointer { firstNonFinite($0) } == i)
        }
        values[3] = .greatestFiniteMagnitude
        #expect(values.withUnsafeBufferPointer { firstNonFinite($0) } == nil)
    }

    /// A collective that outlasts the timeout fires the watchdog once, with the operation and the
    /// context in the message; one that completes in time does not.
    @Test func watchdogNamesTheStalledCollective() throws {
        let messages = Mutex([String]())
        let watchdog = StallWatchdog(timeout: 0.3) { message in messages.withLock { $0.append(message) } }
        defer { watchdog.stop() }
        let comm = WatchedCommunicator(SlowBarrier(), watchdog: watchdog)
        comm.annotate(CollectiveContext("training", epoch: 2, step: 5, of: 9, adamStep: 14))
        var values: [Float] = [1, 2, 3]
        try comm.allreduceSum(&values)
        sleepSeconds(0.5)
        #expect(messages.withLock { $0.isEmpty })
        try comm.barrier()  // 0.8 s
        let got = messages.withLock { $0 }
        #expect(got.count == 1)
        #expect(got.first?.contains("barrier of 0 elements (training, epoch 2, step 5 of 9, Adam step 14)") == true)
    }
}

/// One rank whose barrier takes 0.8 s (a peer that is late).
final class SlowBarrier: Communicator {
    let solo = SoloCommunicator()
    var rank: Int { 0 }
    var size: Int { 1 }
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
    func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
    func gather(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>, counts: [Int], root: Int) throws {
        try solo.gather(send, into: receive, counts: counts, root: root)
    }
    func gather(_ send: UnsafeRawBufferPointer, into receive: UnsafeMutableRawBufferPointer, counts: [Int], root: Int) throws {
        try solo.gather(send, into: receive, counts: counts, root: root)
    }
    func scatter(_ send: UnsafeBufferPointer<Float>, into receive: UnsafeMutableBufferPointer<Float>, counts: [Int], root: Int) throws {
        try solo.scatter(send, into: receive, counts: counts, root: root)
    }
    func barrier() throws { sleepSeconds(0.8) }
    func abort(code: Int32, message: String) -> Never { solo.abort(code: code, message: message) }
}
