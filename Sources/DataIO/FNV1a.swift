/// 64-bit FNV-1a, the project's one: checkpoints store it for every float buffer
/// (Checkpoint), and the trainer compares the replicas' weights by it (Training).
public enum FNV1a {
    public static func hash64(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        return hash
    }

    /// Of the values' float32 little-endian bytes (the host is little-endian, as the NPY codec
    /// already requires).
    public static func hash64(_ values: [Float]) -> UInt64 {
        values.withUnsafeBytes { hash64($0) }
    }
}
