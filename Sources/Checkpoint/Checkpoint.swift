import CHDF5
import DataIO
import Model
import Training

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A U-Net checkpoint: an HDF5 file that Keras can load as weights and this trainer can resume
/// from.
///
/// The file starts with a 512-byte `CheckpointHeader` (HDF5's user block, which HDF5, h5py and
/// Keras skip): magic, length and a CRC-32 of the rest. The HDF5 layout follows (see
/// `KerasLegacyWeights` for the root, which `model.load_weights("x.h5")` reads and which
/// ignores everything else):
///
///     /                         Keras' legacy weights layout: @layer_names, @backend,
///                               @keras_version, /<layer>/<layer>/{kernel,bias}, ...
///     /unet_trainer/            this trainer's group
///       @format_version         int64, 1
///       @configuration          UTF-8 string: UNetConfiguration as JSON
///       @parameters_fnv1a64     uint64 checksum of the weights
///       training_state/         only when `state` is not nil
///         @epoch @adam_step     int64
///         @learning_rate @mean @std   float32
///         @seed                 uint64
///         @best_score           float64 (absent when nil)
///         adam_m, adam_v        float32 (parameterCount,), table order; each with @fnv1a64
///         history               scalar UTF-8 string dataset: [EpochRecord] as JSON
///
/// Integrity: the header's CRC-32 covers every byte of the file and is verified before HDF5
/// reads any (see `read`). Inside, each float buffer also carries a 64-bit FNV-1a checksum of
/// its float32 little-endian bytes in parameter-table order (for the weights, all datasets
/// concatenated), verified after reading: with the superblock's length, the only checks of
/// files without the header (written by Keras, or before the header existed). HDF5's Fletcher32
/// filter is not used: it needs chunked datasets, which Keras-side tools do not write, and
/// contiguous datasets keep the file exactly like Keras' own.
///
/// Every failure is a `DataError(path, problem)`, one line naming the file.
public struct Checkpoint: Equatable, Sendable {
    public var configuration: UNetConfiguration
    /// All weights, in `configuration.parameterTable` order (as `UNet.parameters`).
    public var parameters: [Float]
    /// Nil for a weights-only checkpoint (e.g. one imported from Keras).
    public var state: TrainingState?

    /// The layout version this code writes and reads.
    public static let formatVersion: Int64 = 1

    public init(configuration: UNetConfiguration, parameters: [Float], state: TrainingState? = nil) {
        self.configuration = configuration
        self.parameters = parameters
        self.state = state
    }

    // MARK: Writing

    /// Writes the checkpoint to `path` so that the previous file there stays whole and readable
    /// until the new one is complete and on disk, and a failure leaves nothing else behind.
    ///
    /// HDF5 builds the file in memory (`HDF5Image`: it never writes to disk itself), with a
    /// 512-byte user block that receives the `CheckpointHeader` (length and CRC-32 of the rest,
    /// verified by `read` before HDF5 parses anything). `DurableFile` then writes it to a
    /// temporary name beside `path`, `fsync`s it, renames it over `path` and `fsync`s the folder.
    /// A failed write — a full disk, a read-only or missing folder, a short write, a failing
    /// `fsync` or `rename` — throws one `DataError` naming `path`, the step and the system's
    /// reason ("No space left on device"), removes the temporary file and leaves the previous
    /// checkpoint as it was. Writing costs the file's size in memory (the in-memory image).
    public func write(to path: String) throws {
        try write(to: path, operations: .system)
    }

    /// `write(to:)` through `operations` (a test makes them fail); `header: false` writes the
    /// file as versions before the header did: plain HDF5, no user block (for tests of that
    /// reading path).
    func write(to path: String, operations: FileOperations, header: Bool = true) throws {
        do {
            try configuration.validate()
        } catch {
            throw DataError(path, "cannot write a checkpoint: \(error)")
        }
        let count = configuration.parameterCount
        guard parameters.count == count else {
            throw DataError(path, "cannot write a checkpoint: \(parameters.count) parameters,"
                + " \(configuration) has \(count)")
        }
        if let state, state.adamM.count != count || state.adamV.count != count {
            throw DataError(path, "cannot write a checkpoint: Adam moments of \(state.adamM.count) and"
                + " \(state.adamV.count) values, \(configuration) has \(count) parameters")
        }
        let configurationJSON = try Self.json(configuration)
        let historyJSON = try state.map { try Self.json($0.history) }
        let image = try H5.quietly {
            do {
                return try HDF5Image(name: StagedOutputs.temporaryPath(for: path),
                                     userBlock: header ? CheckpointHeader.size : 0) { file in
                    try parameters.withUnsafeBufferPointer {
                        try KerasLegacyWeights.write(file, configuration: configuration, parameters: $0)
                    }
                    try writeTrainerGroup(file, configurationJSON: configurationJSON, historyJSON: historyJSON)
                }
            } catch let problem as HDF5Problem {
                throw DataError(path, "cannot write a checkpoint: \(problem.message)")
            }
        }
        if header { CheckpointHeader.stamp(image.bytes) }
        try DurableFile.write(UnsafeRawBufferPointer(image.bytes), to: path, operations: operations)
    }

    private func writeTrainerGroup(_ file: hid_t, configurationJSON: String, historyJSON: String?) throws {
        let group = try H5.createGroup(file, "unet_trainer")
        defer { H5.close(group) }
        try H5.setAttribute(group, "format_version", Self.formatVersion)
        try H5.setAttribute(group, "configuration", string: configurationJSON, utf8: true)
        try H5.setAttribute(group, "parameters_fnv1a64", FNV1a.hash64(parameters))
        guard let state, let historyJSON else { return }
        let stateGroup = try H5.createGroup(group, "training_state")
        defer { H5.close(stateGroup) }
        try H5.setAttribute(stateGroup, "epoch", Int64(state.epoch))
        try H5.setAttribute(stateGroup, "adam_step", Int64(state.adamStep))
        try H5.setAttribute(stateGroup, "learning_rate", state.learningRate)
        try H5.setAttribute(stateGroup, "mean", state.mean)
        try H5.setAttribute(stateGroup, "std", state.std)
        try H5.setAttribute(stateGroup, "seed", state.seed)
        if let best = state.bestScore { try H5.setAttribute(stateGroup, "best_score", best) }
        if state.epochStep > 0 {
            try H5.setAttribute(stateGroup, "epoch_step", Int64(state.epochStep))
            try H5.setAttribute(stateGroup, "epoch_loss_sum", state.epochLossSum)
            try H5.setAttribute(stateGroup, "epoch_images", Int64(state.epochImages))
            try H5.setAttribute(stateGroup, "epoch_seconds", state.epochSeconds)
        }
        for (name, values) in [("adam_m", state.adamM), ("adam_v", state.adamV)] {
            let dataset = try values.withUnsafeBufferPointer {
                try H5.writeFloats(stateGroup, name, $0, shape: [values.count])
            }
            defer { H5.close(dataset) }
            try H5.setAttribute(dataset, "fnv1a64", FNV1a.hash64(values))
        }
        try H5.writeString(stateGroup, "history", historyJSON)
    }

    // MARK: Reading

    /// Reads the checkpoint at `path`.
    ///
    /// A file this program wrote is verified whole before HDF5 parses any of it
    /// (`CheckpointHeader.verify`: the header, the length, the CRC-32 of every byte), so a
    /// damaged checkpoint is refused in one line and never reaches HDF5's parser, which is not
    /// robust against damaged input.
    ///
    /// A file without that header — a Keras weights file, or a checkpoint written before the
    /// header existed — is still read, through HDF5 without a whole-file check: its superblock's
    /// length and its global heap collections (`H5.globalHeapDamage`) are checked first, the
    /// FNV-1a checksums of the weights and moments after. Most damage is then refused in one
    /// line, but not all: damaged attributes other than the weights' (epoch, mean, std, history)
    /// can read as valid, and HDF5 1.10 can still crash (SIGSEGV) on a variable-length string
    /// whose reference names an object its global heap collection does not have, or allocate up
    /// to 4 GiB for one whose length is damaged (HDF5 1.14 refuses both). CheckpointFuzzTests
    /// measures this.
    ///
    /// - Parameter expecting: the configuration of this run. When given, a checkpoint for another
    ///   configuration is refused with a message listing the differing fields; and a file with
    ///   Keras' weights only (no `/unet_trainer` group, e.g. written by Keras-side tools) is
    ///   imported if its datasets fit this configuration's parameter table, with `state` nil.
    public static func read(from path: String, expecting: UNetConfiguration? = nil) throws -> Checkpoint {
        var status = stat()
        guard stat(path, &status) == 0 else { throw DataError(path, String(cString: strerror(errno))) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw DataError(path, "not a regular file") }
        let kind = try CheckpointHeader.verify(path)
        return try H5.quietly {
            do {
                let isHDF5 = try H5.check(H5Fis_hdf5(path), "cannot read")
                guard isHDF5 > 0 else { throw HDF5Problem("not an HDF5 file") }
                if let (actual, stored) = H5.truncation(path) {
                    throw HDF5Problem("truncated HDF5 file: \(actual) bytes, its superblock says \(stored)")
                }
                if kind == .plainHDF5, let damage = H5.globalHeapDamage(path) { throw HDF5Problem(damage) }
                let file = H5Fopen(path, chdf5_acc_rdonly(), H5.plist)
                guard file >= 0 else { throw HDF5Problem("corrupt HDF5 file: \(H5.lastError())") }
                defer { H5.close(file) }
                return try read(file, expecting: expecting)
            } catch let problem as HDF5Problem {
                throw DataError(path, problem.message)
            }
        }
    }

    private static func read(_ file: hid_t, expecting: UNetConfiguration?) throws -> Checkpoint {
        guard H5.exists(file, "unet_trainer") else {
            guard let expecting else {
                throw HDF5Problem("no unet_trainer group (a Keras weights file?):"
                    + " importing it needs the expected configuration")
            }
            return Checkpoint(configuration: expecting,
                              parameters: try KerasLegacyWeights.read(file, configuration: expecting))
        }
        let group = try H5.openGroup(file, "unet_trainer")
        defer { H5.close(group) }
        let version: Int64 = try H5.attribute(group, "format_version")
        guard version == formatVersion else {
            throw HDF5Problem("checkpoint format version \(version), this program reads version \(formatVersion)")
        }
        let configuration: UNetConfiguration = try decode(try H5.stringsAttribute(group, "configuration").first ?? "",
                                                          what: "configuration")
        do {
            try configuration.validate()
        } catch {
            throw HDF5Problem("invalid configuration: \(error)")
        }
        if let expecting, expecting != configuration {
            throw HDF5Problem("checkpoint is for another configuration (checkpoint vs this run): "
                + configuration.differences(from: expecting).joined(separator: ", "))
        }
        let parameters = try KerasLegacyWeights.read(file, configuration: configuration)
        try verify(parameters, against: try H5.attribute(group, "parameters_fnv1a64"), what: "the weights")
        var checkpoint = Checkpoint(configuration: configuration, parameters: parameters)
        if H5.exists(group, "training_state") {
            checkpoint.state = try readState(group, parameterCount: parameters.count)
        }
        return checkpoint
    }

    private static func readState(_ parent: hid_t, parameterCount: Int) throws -> TrainingState {
        let group = try H5.openGroup(parent, "training_state")
        defer { H5.close(group) }
        func moments(_ name: String) throws -> [Float] {
            let path = "unet_trainer/training_state/\(name)"
            let dataset = try H5.openDataset(group, name)
            defer { H5.close(dataset) }
            let shape = try H5.shape(dataset, path)
            guard shape == [parameterCount] else {
                throw HDF5Problem("dataset \(path) has shape \(tuple(shape)), expected \(tuple([parameterCount]))")
            }
            var values = [Float](repeating: 0, count: parameterCount)
            try values.withUnsafeMutableBufferPointer { try H5.readFloats(dataset, path, into: $0) }
            try verify(values, against: try H5.attribute(dataset, "fnv1a64"), what: path)
            return values
        }
        var state = TrainingState(
            epoch: Int(try H5.attribute(group, "epoch", as: Int64.self)),
            adamStep: Int(try H5.attribute(group, "adam_step", as: Int64.self)),
            adamM: try moments("adam_m"),
            adamV: try moments("adam_v"),
            learningRate: try H5.attribute(group, "learning_rate"),
            mean: try H5.attribute(group, "mean"),
            std: try H5.attribute(group, "std"),
            seed: try H5.attribute(group, "seed"),
            bestScore: H5.hasAttribute(group, "best_score") ? try H5.attribute(group, "best_score") : nil,
            history: try decode(try H5.stringDataset(group, "history"), what: "history"))
        if H5.hasAttribute(group, "epoch_step") {
            state.epochStep = Int(try H5.attribute(group, "epoch_step", as: Int64.self))
            state.epochLossSum = try H5.attribute(group, "epoch_loss_sum")
            state.epochImages = Int(try H5.attribute(group, "epoch_images", as: Int64.self))
            state.epochSeconds = try H5.attribute(group, "epoch_seconds")
            guard state.epochStep > 0, state.epochImages > 0 else {
                throw HDF5Problem("invalid epoch position: step \(state.epochStep), \(state.epochImages) images")
            }
        }
        return state
    }

    private static func verify(_ values: [Float], against stored: UInt64, what: String) throws {
        let computed = FNV1a.hash64(values)
        guard computed == stored else {
            throw HDF5Problem("checksum mismatch in \(what) (stored \(hex(stored)), computed \(hex(computed))):"
                + " the file is corrupt")
        }
    }

    // MARK: JSON

    /// JSON with sorted keys; non-finite numbers (a diverged loss) as the strings "nan", "inf", "-inf".
    private static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    private static func decode<T: Decodable>(_ text: String, what: String) throws -> T {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw HDF5Problem("invalid \(what) JSON: \(text.prefix(80))")
        }
    }
}


private func hex(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return "0x" + String(repeating: "0", count: 16 - digits.count) + digits
}
