import Testing
import Distributed
@testable import Training

/// Every MPI call of the test suite lives in this one serialized suite: Swift Testing runs suites in
/// parallel, and collectives must be entered in the same order on every rank. `MPI_Finalize` is never
/// called from a test (the process exit ends the job).
///
/// `swift test` runs it as a 1-rank job (MPI singleton start); `Launch/test.sh` runs it again under
/// `mpirun -np 2`, where each assertion depends on both ranks' data.
@Suite("Communicator (MPI)", .serialized)
struct CommunicatorTests {
    let comm: any Communicator = MPICommunicator.world

    @Test func rankAndSize() {
        #expect(comm.size >= 1)
        #expect((0..<comm.size).contains(comm.rank))
    }

    @Test func allreduceSumFloatDependsOnEveryRank() throws {
        // Rank r contributes (r + 1) * (i + 1) to element i, so the sum is
        // (i + 1) * size * (size + 1) / 2: wrong if any rank's data is missing or counted twice.
        let n = 1000
        var values = (0..<n).map { Float(comm.rank + 1) * Float($0 + 1) }
        try comm.allreduceSum(&values)
        let s = Float(comm.size * (comm.size + 1) / 2)
        for i in 0..<n { #expect(values[i] == Float(i + 1) * s) }
    }

    @Test func allreduceSumDoubleDependsOnEveryRank() throws {
        var values: [Double] = [Double(comm.rank), 1, Double(1 << comm.rank)]
        try comm.allreduceSum(&values)
        #expect(values[0] == Double(comm.size * (comm.size - 1) / 2))
        #expect(values[1] == Double(comm.size))
        #expect(values[2] == Double((1 << comm.size) - 1))  // a distinct bit per rank
    }

    @Test func broadcastFromRootReplacesEveryRanksBuffer() throws {
        for root in 0..<comm.size {
            var values = [Float](repeating: Float(comm.rank) * 100, count: 17)
            try comm.broadcast(&values, root: root)
            #expect(values == [Float](repeating: Float(root) * 100, count: 17))
            let scalar = try comm.broadcast(Int64(comm.rank * 7 + 3), root: root)
            #expect(scalar == Int64(root * 7 + 3))
        }
    }

    @Test func gatherAndScatterInRankOrder() throws {
        // Rank r holds r + 1 elements valued 100 r + i: the root's concatenation shows any rank
        // missing, duplicated or out of order; scatter sends every rank its own part back.
        let counts = (0..<comm.size).map { $0 + 1 }
        let mine = (0..<(comm.rank + 1)).map { Float(100 * comm.rank + $0) }
        let expected = (0..<comm.size).flatMap { r in (0..<(r + 1)).map { Float(100 * r + $0) } }
        for root in 0..<comm.size {
            var all = [Float](repeating: -1, count: comm.rank == root ? expected.count : 0)
            try mine.withUnsafeBufferPointer { s in
                try all.withUnsafeMutableBufferPointer { try comm.gather(s, into: $0, counts: counts, root: root) }
            }
            if comm.rank == root { #expect(all == expected) }
            var back = [Float](repeating: -1, count: comm.rank + 1)
            try all.withUnsafeBufferPointer { s in
                try back.withUnsafeMutableBufferPointer { try comm.scatter(s, into: $0, counts: counts, root: root) }
            }
            #expect(back == mine)
        }
        var wrong = [Float](repeating: 0, count: 1)
        #expect(throws: CommunicatorError.self) {
            try mine.withUnsafeBufferPointer { s in
                try wrong.withUnsafeMutableBufferPointer { try comm.gather(s, into: $0, counts: [5], root: 0) }
            }
        }
    }

    /// Texts of different lengths (the empty one too) arrive on the root whole, in rank order.
    @Test func gatherTextsInRankOrder() throws {
        let mine = String(repeating: "é\(comm.rank)", count: comm.rank)
        for root in 0..<comm.size {
            let all = try comm.gather(mine, root: root)
            if comm.rank == root {
                #expect(all == (0..<comm.size).map { String(repeating: "é\($0)", count: $0) })
            } else {
                #expect(all.isEmpty)
            }
        }
    }

    /// The warning about ranks on different OpenBLAS kernels: on rank 0 only, naming each rank's
    /// type, and none when every rank has the same (so none in a 1-rank job).
    @Test func differentKernelsOnTheRanksWarnOnRankZero() throws {
        let alike = try RankKernels.mismatchWarning(comm, coreName: "Haswell")
        #expect(alike == nil)
        let mixed = try RankKernels.mismatchWarning(comm, coreName: comm.rank == 1 ? "Zen" : "Haswell")
        if comm.size > 1 && comm.isRoot {
            #expect(mixed?.hasPrefix("warning: the ranks run different OpenBLAS kernels (rank 0 Haswell, rank 1 Zen") == true,
                    "\(mixed ?? "no warning")")
        } else {
            #expect(mixed == nil)
        }
    }

    @Test func sharesDifferByAtMostOne() {
        for size in 1...5 {
            for count in 0...12 {
                let shares = (0..<size).map { share(of: count, rank: $0, size: size) }
                #expect(shares.first!.lowerBound == 0 && shares.last!.upperBound == count)
                for r in 1..<size { #expect(shares[r].lowerBound == shares[r - 1].upperBound) }
                let sizes = shares.map(\.count)
                #expect(sizes.max()! - sizes.min()! <= 1)
            }
        }
    }

    @Test func barrierAndBadRoot() throws {
        try comm.barrier()
        var values: [Float] = [1]
        #expect(throws: CommunicatorError.self) { try comm.broadcast(&values, root: comm.size) }
    }
}
