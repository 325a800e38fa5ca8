import Testing
@testable import Training

@Suite("Ranks' OpenBLAS kernels")
struct RankKernelsTests {
    @Test func describesEachCoreTypeWithItsRanks() {
        #expect(RankKernels.describe(["Haswell", "Zen"]) == "rank 0 Haswell, rank 1 Zen")
        #expect(RankKernels.describe(["Haswell", "Haswell", "Zen", "Zen", "Haswell", "SkylakeX", "Haswell", "Haswell"])
                == "Haswell on ranks 0-1, 4 and 6-7, Zen on ranks 2-3, SkylakeX on rank 5")
        #expect(RankKernels.spans([3]) == "3")
        #expect(RankKernels.spans([0, 2]) == "0 and 2")
    }
}
