import Testing
import Distributed

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

    @Test func barrierAndBadRoot() throws {
        try comm.barrier()
        var values: [Float] = [1]
        #expect(throws: CommunicatorError.self) { try comm.broadcast(&values, root: comm.size) }
    }
}
