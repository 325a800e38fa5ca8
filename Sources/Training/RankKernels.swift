import Distributed
import Kernels

/// Whether the ranks of a job run the same OpenBLAS kernels. Ranks with different core types (a
/// launcher that did not pass `OPENBLAS_CORETYPE` on, nodes of different CPUs) compute their
/// shares with GEMMs that round differently, so the job's result depends on which rank got which
/// images and is no longer reproducible with another rank count (Docs/CLUSTER.md).
public enum RankKernels {
    /// On `root`, a warning naming the ranks of each core type when the ranks' types differ;
    /// nil when they are all alike, and on every other rank. A collective (two gathers).
    public static func mismatchWarning(_ comm: any Communicator, coreName: String = BLAS.coreName,
                                       root: Int = 0) throws -> String? {
        guard comm.size > 1 else { return nil }
        let names = try comm.gather(coreName, root: root)
        guard comm.rank == root, Set(names).count > 1 else { return nil }
        return "warning: the ranks run different OpenBLAS kernels (\(describe(names))): results depend on which "
            + "rank computes which images; set OPENBLAS_CORETYPE alike on every rank (Docs/CLUSTER.md)"
    }

    /// "rank 0 Haswell, rank 1 Zen", or for more ranks "Haswell on ranks 0-3 and 6, Zen on
    /// ranks 4-5": each core type with its ranks, in the order of their first rank.
    static func describe(_ names: [String]) -> String {
        if names.count <= 2 { return names.enumerated().map { "rank \($0) \($1)" }.joined(separator: ", ") }
        var order: [String] = [], ranks: [String: [Int]] = [:]
        for (rank, name) in names.enumerated() {
            if ranks[name] == nil { order.append(name) }
            ranks[name, default: []].append(rank)
        }
        return order.map { name in
            let list = ranks[name]!
            return "\(name) on rank\(list.count > 1 ? "s" : "") \(spans(list))"
        }.joined(separator: ", ")
    }

    /// Sorted ranks as spans: [0, 1, 2, 5, 7, 8] -> "0-2, 5 and 7-8".
    static func spans(_ ranks: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < ranks.count {
            var j = i
            while j + 1 < ranks.count && ranks[j + 1] == ranks[j] + 1 { j += 1 }
            parts.append(i == j ? "\(ranks[i])" : "\(ranks[i])-\(ranks[j])")
            i = j + 1
        }
        return parts.count == 1 ? parts[0] : parts.dropLast().joined(separator: ", ") + " and " + parts.last!
    }
}
