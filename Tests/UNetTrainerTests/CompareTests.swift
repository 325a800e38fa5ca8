import Foundation
import Testing
import Checkpoint
import Training
import Model

/// `unet compare` as a user runs it: identical, slightly and clearly different checkpoints, the
/// training state under --state, and a checkpoint of another configuration.
@Suite("unet compare")
struct CompareTests {
    static let tiny = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 2)

    /// A checkpoint with deterministic weights of order 0.1 and a training state.
    static func checkpoint(_ configuration: UNetConfiguration = tiny, withState: Bool = true) -> Checkpoint {
        let n = configuration.parameterCount
        let weights = (0..<n).map { Float(($0 * 7919) % 201 - 100) / 1000 }
        let state = TrainingState(epoch: 2, adamStep: 6, adamM: weights.map { $0 / 100 }, adamV: weights.map { $0 * $0 / 100 },
                                  learningRate: 1e-3, mean: 100, std: 50, seed: 3)
        return Checkpoint(configuration: configuration, parameters: weights, state: withState ? state : nil)
    }

    func compare(_ arguments: [String]) throws -> CLITests.Result { try CLITests.run(["compare"] + arguments) }

    @Test func identicalCheckpointsAreBitIdentical() throws {
        try withTemporaryDirectory { dir in
            try Self.checkpoint().write(to: dir + "/a.h5")
            try Self.checkpoint().write(to: dir + "/b.h5")
            let r = try compare([dir + "/a.h5", dir + "/b.h5", "--tolerance", "0", "--state"])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
            let lines = r.stdout.split(separator: "\n").map(String.init)
            // One line per layer with weights (11 for depth 2), then weights, adam m, adam v overall.
            let layers = Set(Self.tiny.parameterTable.map(\.layer))
            #expect(layers.count == 11)
            for layer in layers { #expect(lines.contains { $0.hasPrefix(layer + " ") }, "no line for \(layer)") }
            let weights = lines.first { $0.hasPrefix("weights ") }?.split(separator: " ").map(String.init)
            #expect(weights == ["weights", "\(Self.tiny.parameterCount)", "0", "0", "0"], "\(r.stdout)")
            #expect(lines.contains { $0.hasPrefix("adam m ") } && lines.contains { $0.hasPrefix("adam v ") })
            #expect(lines.contains { $0.hasPrefix("adam step") && $0.hasSuffix("6 vs 6") })
            #expect(lines.last == "same: weights and training state bit-identical")
        }
    }

    @Test func slightlyDifferentWithinAndBeyondTolerance() throws {
        try withTemporaryDirectory { dir in
            let a = Self.checkpoint()
            var b = a
            let index = Self.tiny.parameterTable.first { $0.layer == "conv2d_3" }!.offset + 1
            b.parameters[index] += 1e-6
            try a.write(to: dir + "/a.h5")
            try b.write(to: dir + "/b.h5")

            let loose = try compare([dir + "/a.h5", dir + "/b.h5"])  // default tolerance 1e-5
            #expect(loose.status == 0, "\(loose.stderr)")
            #expect(loose.stdout.contains("within tolerance 1.000e-05"))
            let line = loose.stdout.split(separator: "\n").first { $0.hasPrefix("conv2d_3 ") }.map(String.init) ?? ""
            #expect(line.hasSuffix(" 1"), "one value differs: \(line)")
            let others = loose.stdout.split(separator: "\n").first { $0.hasPrefix("conv2d_4 ") }.map(String.init) ?? ""
            #expect(others.hasSuffix(" 0"), "\(others)")

            let exact = try compare([dir + "/a.h5", dir + "/b.h5", "--tolerance", "0"])
            #expect(exact.status == 1)
            #expect(exact.stderr.split(separator: "\n").count == 1, "\(exact.stderr)")
            #expect(exact.stderr.hasPrefix("error: weights: 1 of \(Self.tiny.parameterCount) values differ"), "\(exact.stderr)")
            #expect(exact.stderr.contains("conv2d_3"))

            var c = a
            c.parameters[index] += 1e-3
            try c.write(to: dir + "/c.h5")
            let far = try compare([dir + "/a.h5", dir + "/c.h5", "--tolerance", "1e-4"])
            #expect(far.status == 1 && far.stderr.split(separator: "\n").count == 1, "\(far.stderr)")
            #expect(far.stderr.hasPrefix("error: weights differ by up to 1.0"), "\(far.stderr)")
            #expect(far.stdout.split(separator: "\n").last == "DIFFERENT: weights beyond tolerance 1.000e-04")
        }
    }

    @Test func stateIsComparedOnlyWithTheFlag() throws {
        try withTemporaryDirectory { dir in
            let a = Self.checkpoint()
            var b = a
            b.state!.adamV[3] *= 2
            b.state!.adamStep = 7
            try a.write(to: dir + "/a.h5")
            try b.write(to: dir + "/b.h5")
            #expect(try compare([dir + "/a.h5", dir + "/b.h5", "--tolerance", "0"]).status == 0)
            let r = try compare([dir + "/a.h5", dir + "/b.h5", "--tolerance", "0", "--state"])
            #expect(r.status == 1 && r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
            #expect(r.stderr.contains("adam v: 1 of") && r.stderr.contains("adam step 6 vs 7") && !r.stderr.contains("weights"), "\(r.stderr)")

            try Self.checkpoint(withState: false).write(to: dir + "/w.h5")
            let weightsOnly = try compare([dir + "/a.h5", dir + "/w.h5", "--state"])
            #expect(weightsOnly.status == 1 && weightsOnly.stderr == "error: \(dir)/w.h5: has no training state (weights only): compare it without --state\n")
            #expect(try compare([dir + "/a.h5", dir + "/w.h5", "--tolerance", "0"]).status == 0)
        }
    }

    @Test func anotherConfigurationIsOneLineNamingTheFields() throws {
        try withTemporaryDirectory { dir in
            try Self.checkpoint().write(to: dir + "/a.h5")
            try Self.checkpoint(UNetConfiguration(rows: 16, cols: 32, filters: 4, depth: 2)).write(to: dir + "/b.h5")
            let r = try compare([dir + "/a.h5", dir + "/b.h5"])
            #expect(r.status == 1 && r.stdout.isEmpty)
            #expect(r.stderr == "error: \(dir)/b.h5: checkpoint is for another configuration (checkpoint vs this run): cols 32 vs 16, filters 4 vs 2\n")
        }
    }

    @Test func helpTeaches() throws {
        let help = try CLITests.run(["compare", "--help"])
        #expect(help.status == 0 && help.stdout.contains("Example") && help.stdout.contains("--tolerance 0"))
    }
}
