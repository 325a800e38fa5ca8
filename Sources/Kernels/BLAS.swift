import COpenBLAS

/// What the kernels' GEMMs run on.
public enum BLAS {
    /// The core type OpenBLAS chose its kernels for (`Haswell`, `SkylakeX`, `Zen`, ...: the CPU's,
    /// or `OPENBLAS_CORETYPE`'s). Two processes with different core types compute the same GEMM
    /// with different blockings and instructions, so their results differ in the last bits.
    public static var coreName: String {
        openblas_get_corename().map { String(cString: $0) } ?? "unknown"
    }
}
