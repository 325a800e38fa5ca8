import Testing
import Random
@testable import Model
@testable import Training

@Suite("Training")
struct TrainingTests {
    @Test func splitHoldsOutWholeLastSubjects() {
        let subjects: [Int32] = [1, 1, 1, 2, 2, 3, 3, 3, 10, 10]
        let (train, validation) = Preprocessing.splitBySubject(subjects, fraction: 0.2)
        #expect(validation == [8, 9])  // subject 10: 2 of 10 images
        #expect(train == Array(0..<8))
        let (_, more) = Preprocessing.splitBySubject(subjects, fraction: 0.5)
        #expect(Set(more.map { subjects[$0] }) == [3, 10])  // 5 images, closest to 5
        #expect(Preprocessing.splitBySubject(subjects, fraction: 0).validation.isEmpty)
        #expect(Preprocessing.splitBySubject([4, 4, 4], fraction: 0.5).validation.isEmpty)  // one subject: nothing to hold out
    }

    @Test func permutationIsSeededPerEpochAndComplete() {
        let a = Trainer.permutation(count: 50, seed: 3, epoch: 1)
        #expect(a == Trainer.permutation(count: 50, seed: 3, epoch: 1))
        #expect(a != Trainer.permutation(count: 50, seed: 3, epoch: 2))
        #expect(a.sorted() == Array(0..<50))
    }

    /// Launch/reference/seeded_generator.py ports the generator and the permutation so the Keras
    /// reference can train on our order (Docs/ACCURACY.md); it asserts the same list.
    @Test func permutationMatchesThePythonPort() {
        #expect(Trainer.permutation(count: 12, seed: 3, epoch: 2) == [11, 3, 1, 9, 0, 2, 6, 8, 10, 5, 4, 7])
        #expect(Trainer.permutation(count: 1000, seed: 1, epoch: 20).prefix(4) == [427, 103, 333, 42])
    }

    @Test func meanAndStdAsNumPy() {
        let (m, s) = Preprocessing.meanAndStd([1, 2, 3, 4])
        #expect(m == 2.5 && abs(s - 1.118034) < 1e-6)
    }

    /// A few steps on a tiny set must lower the loss (the whole loop wired right).
    @Test func trainingLowersTheLoss() throws {
        let c = UNetConfiguration(rows: 16, cols: 16, filters: 4, depth: 2)
        let model = try UNet(configuration: c, seed: 1, maxBatch: 4)
        var rng = SeededGenerator(seed: 8)
        let n = 8, plane = 256
        var images = [Float](), masks = [Float]()
        for i in 0..<n {
            for p in 0..<plane {
                let (y, x) = (p / 16, p % 16)
                let inside = i % 2 == 0 && (y - 8) * (y - 8) + (x - 7) * (x - 7) < 16
                masks.append(inside ? 1 : 0)
                images.append((inside ? -1 : 0.5) + Float(rng.normal(standardDeviation: 0.3)))
            }
        }
        let data = Samples(rows: 16, cols: 16, images: images, masks: masks)
        let trainer = Trainer(model: model, adam: Adam(parameterCount: c.parameterCount, learningRate: 3e-3), batchSize: 4, seed: 2)
        let before = try trainer.evaluate(data).loss
        for epoch in 0..<15 { _ = try trainer.trainEpoch(data, epoch: epoch) }
        let after = try trainer.evaluate(data)
        #expect(after.loss < before - 0.1, "loss \(before) -> \(after.loss)")
        #expect(trainer.adam.step == 30)
    }
}

/// The score of predicting nothing, printed beside val_kaggle: the share of empty masks, the same
/// as the per-image Kaggle score of all-zero predictions.
@Suite("Empty-mask baseline") struct EmptyPredictionTests {
    @Test func isTheScoreOfPredictingNothing() throws {
        let plane = 4
        // Masks: empty; a nerve; only a value below 0.5 (empty as the score reads targets).
        let masks: [Float] = [0, 0, 0, 0, 0, 1, 1, 0, 0.4, 0, 0, 0]
        let data = Samples(rows: 2, cols: 2, images: [Float](repeating: 0, count: 12), masks: masks)
        let zeros = [Float](repeating: 0, count: masks.count)
        let kaggle = zeros.withUnsafeBufferPointer { p in
            masks.withUnsafeBufferPointer { t in KaggleScore.perImage(predictions: p, targets: t, pixels: plane) }
        }
        #expect(KaggleScore.emptyPrediction(data) == 2.0 / 3 && kaggle.reduce(0, +) / 3 == 2.0 / 3)
        #expect(KaggleScore.emptyPrediction(Samples(rows: 2, cols: 2, images: [])) == nil)
    }
}
