import Testing
import Distributed
import Random
@testable import Model
@testable import Training

/// Data-parallel training against the one-process loop. These tests live in the serialized MPI
/// suite (collectives must be entered in the same order on every rank): under `swift test` they
/// run as a 1-rank job; `Launch/test.sh` runs them again under `mpirun -np 2`, where each rank
/// also computes the one-process reference locally and compares.
extension CommunicatorTests {
    static let tiny = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 2)

    /// `count` labelled samples: a dark disc on half of them, noise everywhere.
    static func samples(_ count: Int) -> Samples {
        var rng = SeededGenerator(seed: 21)
        var images = [Float](), masks = [Float]()
        for i in 0..<count {
            for p in 0..<256 {
                let (y, x) = (p / 16, p % 16)
                let inside = i % 2 == 0 && (y - 7) * (y - 7) + (x - 8) * (x - 8) < 12
                masks.append(inside ? 1 : 0)
                images.append((inside ? -1 : 0.5) + Float(rng.normal(standardDeviation: 0.4)))
            }
        }
        return Samples(rows: 16, cols: 16, images: images, masks: masks)
    }

    func trainer(batch: Int, _ comm: any Communicator) throws -> Trainer {
        let model = try UNet(configuration: Self.tiny, seed: 4, maxBatch: Trainer.localBatchSize(batch, ranks: comm.size))
        return Trainer(model: model, adam: Adam(parameterCount: Self.tiny.parameterCount, learningRate: 1e-3),
                       batchSize: batch, seed: 9, communicator: comm)
    }

    /// 12 images in batches of 4 (2 + 2 on two ranks), 11 in batches of 5 (3 + 2, and a last
    /// batch of 1: one rank gets nothing), 9 in batches of 4 (a last batch of 1). Two epochs each;
    /// weights, Adam state, the last summed gradient and the per-epoch losses match the
    /// one-process run. Tolerance: the sums are the same terms added in another order, so the
    /// differences are float32 rounding: measured 3e-8 on weights of order 0.1 after 6 to 8 steps
    /// at lr 1e-3 and 2e-7 relative on the gradient; the bounds are 1e-6 and 1e-5.
    @Test(arguments: [(12, 4), (11, 5), (9, 4)])
    func dataParallelStepsMatchOneProcess(count: Int, batch: Int) throws {
        let data = Self.samples(count)
        let distributed = try trainer(batch: batch, comm)
        let reference = try trainer(batch: batch, SoloCommunicator())
        try distributed.broadcastState()
        for epoch in 1...2 {
            let d = try #require(distributed.trainEpoch(data, epoch: epoch).completed)
            let r = try #require(reference.trainEpoch(data, epoch: epoch).completed)
            #expect(abs(d.loss - r.loss) < 1e-5, "epoch \(epoch): loss \(d.loss) vs \(r.loss)")
            #expect(d.images == r.images)
        }
        #expect(distributed.adam.step == reference.adam.step)
        // The last step's summed gradient itself (Adam would hide a gradient scaled by a
        // constant, e.g. averaged instead of summed over ranks): relative to its largest element.
        let g = maxDifference(distributed.model.gradients, reference.model.gradients)
        let scale = reference.model.gradients.map { abs($0) }.max()!
        #expect(g <= 1e-5 * scale, "gradients differ by \(g) (largest \(scale))")
        let w = maxDifference(distributed.model.parameters, reference.model.parameters)
        let m = maxDifference(distributed.adam.m, reference.adam.m)
        #expect(w < 1e-6, "weights differ by \(w) on rank \(comm.rank) of \(comm.size)")
        #expect(m < 1e-6, "Adam m differs by \(m)")
        // Sharded evaluation gives the one-process figures (the sums are reduced per batch).
        let de = try distributed.evaluate(data), re = try reference.evaluate(data)
        #expect(abs(de.loss - re.loss) < 1e-5 && abs(de.kaggle - re.kaggle) < 1e-9, "\(de) vs \(re)")
        try distributed.checkReplicas()
    }

    @Test func shardedPredictionGathersInOrder() throws {
        let data = Self.samples(7)
        let t = try trainer(batch: 4, comm)
        let local = Trainer.predict(model: t.model, data, batchSize: 3)
        // Only the root's images count: the others pass nothing.
        let gathered = try Trainer.predict(model: t.model, images: comm.isRoot ? data.images : [], count: data.count,
                                           batchSize: 3, communicator: comm)
        if comm.isRoot {
            #expect(gathered.count == local.count)
            #expect(maxDifference(gathered, local) < 1e-6)
        } else {
            #expect(gathered.isEmpty)
        }
    }

    @Test func samplesBroadcastFromTheRoot() throws {
        var s = comm.isRoot ? Self.samples(3) : Samples(rows: 1, cols: 1, images: [])
        try s.broadcast(comm)
        #expect(s.count == 3 && s.rows == 16 && s.images == Self.samples(3).images && s.masks == Self.samples(3).masks)
    }

    @Test func replicaCheckNamesTheRankThatDiffers() throws {
        let t = try trainer(batch: 4, comm)
        try t.broadcastState()
        try t.checkReplicas()  // identical after the broadcast
        guard comm.size > 1 else { return }
        if comm.rank == comm.size - 1 { t.model.parameters[5] = t.model.parameters[5].nextUp }
        let error = #expect(throws: TrainingError.self) { try t.checkReplicas() }
        #expect(error?.description.contains("rank \(comm.size - 1) differ") == true, "\(String(describing: error))")
        #expect(error?.description.contains("rank 0 ") == false)
    }

    func maxDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }
}
