import CHDF5
@testable import Checkpoint
import Training
import DataIO
import Foundation
import Model
import Random
import Testing

/// Checkpoints: round trips, the Keras legacy layout (against Keras' own file when the fixture is
/// present), imports of weights-only files, one-line errors for every kind of bad file, the
/// whole-file header checked before HDF5 reads anything, and failed writes that keep the previous
/// file.
@Suite("Checkpoint")
struct CheckpointTests {
    static let small = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 2, upsample: .nearest)
    static let smallTranspose = UNetConfiguration(rows: 16, cols: 16, filters: 2, depth: 2, upsample: .transpose)

    // MARK: Round trips

    @Test(arguments: [small, smallTranspose])
    func roundTripIsExact(configuration: UNetConfiguration) throws {
        try withTemporaryDirectory { dir in
            let checkpoint = makeCheckpoint(configuration, withState: true)
            try checkpoint.write(to: dir + "/c.h5")
            let back = try Checkpoint.read(from: dir + "/c.h5", expecting: configuration)
            #expect(back.configuration == configuration)
            #expect(back.parameters.map(\.bitPattern) == checkpoint.parameters.map(\.bitPattern))
            #expect(back.state == checkpoint.state)
            #expect(back == checkpoint)
            #expect(listing(dir) == ["c.h5"])
        }
    }

    /// Save, load, predict: the outputs of the reloaded model are bit-identical.
    @Test(arguments: [small, smallTranspose])
    func saveLoadPredictIsBitIdentical(configuration: UNetConfiguration) throws {
        try withTemporaryDirectory { dir in
            let model = try UNet(configuration: configuration, seed: 11, maxBatch: 2)
            var rng = SeededGenerator(seed: 3)
            for view in model.table where view.name == "bias" {
                for i in view.offset..<(view.offset + view.count) { model.parameters[i] = Float(rng.uniform(-0.1...0.1)) }
            }
            let input = (0..<model.input.count).map { _ in Float(rng.normal()) }
            model.input.baseAddress!.update(from: input, count: input.count)
            model.forward(batch: 2)
            let before = Array(model.output)
            try Checkpoint(configuration: configuration, parameters: model.parameters, state: nil).write(to: dir + "/m.h5")

            let loaded = try Checkpoint.read(from: dir + "/m.h5", expecting: configuration)
            let again = try UNet(configuration: loaded.configuration, seed: 99, maxBatch: 2)
            again.parameters = loaded.parameters
            again.input.baseAddress!.update(from: input, count: input.count)
            again.forward(batch: 2)
            #expect(Array(again.output).map(\.bitPattern) == before.map(\.bitPattern))
        }
    }

    @Test func roundTripWithoutStateOrBestScoreAndWithNonFiniteHistory() throws {
        try withTemporaryDirectory { dir in
            let weightsOnly = makeCheckpoint(Self.small, withState: false)
            try weightsOnly.write(to: dir + "/w.h5")
            #expect(try Checkpoint.read(from: dir + "/w.h5") == weightsOnly)  // no `expecting` needed

            var diverged = makeCheckpoint(Self.small, withState: true)
            diverged.state!.bestScore = nil
            diverged.state!.history.append(EpochRecord(epoch: 3, loss: .nan, dice: -.infinity, valLoss: .infinity,
                                                       imagesPerSecond: 1, seconds: 2))
            try diverged.write(to: dir + "/d.h5")
            let back = try #require(try Checkpoint.read(from: dir + "/d.h5").state)
            #expect(back.bestScore == nil)
            let last = try #require(back.history.last)
            #expect(last.loss.isNaN && last.dice == -.infinity && last.valLoss == .infinity && last.valDice == nil)
        }
    }

    // MARK: Layout

    /// The root is Keras' legacy weights layout, read back with plain HDF5 calls.
    @Test(arguments: [small, smallTranspose])
    func fileHasTheKerasLegacyLayout(configuration: UNetConfiguration) throws {
        try withTemporaryDirectory { dir in
            let checkpoint = makeCheckpoint(configuration, withState: true)
            try checkpoint.write(to: dir + "/c.h5")
            let file = H5Fopen(dir + "/c.h5", chdf5_acc_rdonly(), chdf5_p_default())
            #expect(file >= 0)
            defer { H5Fclose(file) }
            #expect(stringsAttribute(file, "layer_names") == configuration.layers.map(\.name))
            #expect(stringsAttribute(file, "backend") == ["tensorflow"])
            for layer in configuration.layers {
                let views = configuration.parameterTable.filter { $0.layer == layer.name }
                let group = H5Gopen2(file, layer.name, chdf5_p_default())
                #expect(group >= 0, "group \(layer.name)")
                #expect(stringsAttribute(group, "weight_names") == views.map { "\(layer.name)/\($0.name)" })
                H5Gclose(group)
                for view in views {
                    let path = "\(layer.name)/\(layer.name)/\(view.name)"
                    #expect(datasetShape(file, path) == view.shape, "\(path)")
                    var values = [Float](repeating: .nan, count: view.count)
                    let dataset = H5Dopen2(file, path, chdf5_p_default())
                    H5Dread(dataset, chdf5_native_float(), chdf5_s_all(), chdf5_s_all(), chdf5_p_default(), &values)
                    H5Dclose(dataset)
                    #expect(values == Array(checkpoint.parameters[view.offset..<(view.offset + view.count)]))
                }
            }
            #expect(datasetShape(file, "unet_trainer/training_state/adam_m") == [configuration.parameterCount])
        }
    }

    /// Our file has exactly the structure of the one Keras writes: same groups, datasets, shapes,
    /// layouts, attribute names, types and string values (plus our own group, which Keras ignores).
    @Test(.enabled(if: kerasFixturesPresent), arguments: ["d2_nearest", "d2_transpose"])
    func structureMatchesKerasOwnFile(fixture: String) throws {
        let (folder, configuration) = try kerasFixture(fixture)
        try withTemporaryDirectory { dir in
            try makeCheckpoint(configuration, withState: true).write(to: dir + "/c.h5")
            let ours = hdf5Tree(dir + "/c.h5").filter { !$0.hasPrefix("/unet_trainer") }
            let keras = hdf5Tree(folder + "/legacy_weights.h5")
            #expect(ours == keras)
            #expect(keras.count > 50)
        }
    }

    /// Keras' own file imports (it has no unet_trainer group) and holds the fixture's weights.
    @Test(.enabled(if: kerasFixturesPresent), arguments: ["d2_nearest", "d2_transpose"])
    func kerasOwnFileImports(fixture: String) throws {
        let (folder, configuration) = try kerasFixture(fixture)
        let imported = try Checkpoint.read(from: folder + "/legacy_weights.h5", expecting: configuration)
        #expect(imported.state == nil && imported.configuration == configuration)
        struct Manifest: Decodable {
            struct Weight: Decodable { let layer: String; let name: String; let file: String }
            let weights: [Weight]
        }
        let manifest = try JSONDecoder().decode(Manifest.self, from: Data(readBytes(folder + "/manifest.json")))
        let table = configuration.parameterTable
        #expect(manifest.weights.count == table.count)
        for (weight, view) in zip(manifest.weights, table) {
            #expect(weight.name == "\(view.layer)/\(view.name)")
            let expected = try NPY.load(folder + "/" + weight.file, as: Float.self)
            #expect(expected.shape == view.shape)
            #expect(Array(imported.parameters[view.offset..<(view.offset + view.count)]) == expected.scalars)
        }
    }

    /// A weights-only file (what Keras-side tools write) imports with `expecting`, state nil; without
    /// `expecting`, or for another configuration, it is refused.
    @Test func weightsOnlyFileImports() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/k.h5"
            let checkpoint = makeCheckpoint(Self.small, withState: true)
            try checkpoint.write(to: path)
            try modify(path) { file in H5Ldelete(file, "unet_trainer", chdf5_p_default()) }
            let imported = try Checkpoint.read(from: path, expecting: Self.small)
            #expect(imported == Checkpoint(configuration: Self.small, parameters: checkpoint.parameters))

            let error = try readError(path)
            #expect(error.description == path + ": no unet_trainer group (a Keras weights file?):"
                + " importing it needs the expected configuration")
            var wider = Self.small
            wider.filters = 4
            let mismatch = try readError(path, expecting: wider)
            #expect(mismatch.description == path + ": dataset conv2d/conv2d/kernel has shape (3, 3, 1, 2),"
                + " conv2d.kernel needs (3, 3, 1, 4)")
        }
    }

    /// Older Keras files import too: Keras 2's `:0` weight names and fixed-length byte-string
    /// attributes (h5py 2), only the weighted layers listed, optionally inside the `model_weights`
    /// group of a full-model `model.save("x.h5")` file.
    @Test(arguments: [false, true])
    func keras2StyleFileImports(fullModel: Bool) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/k2.h5"
            let configuration = Self.smallTranspose
            let checkpoint = makeCheckpoint(configuration, withState: false)
            try checkpoint.write(to: path)
            let layers = configuration.layers.map(\.name)
            let weighted = layers.filter { name in configuration.parameterTable.contains { $0.layer == name } }
            try modify(path) { file in
                var failures = 0
                func count(_ status: herr_t) { if status < 0 { failures += 1 } }
                count(H5Ldelete(file, "unet_trainer", chdf5_p_default()))
                var root = file
                if fullModel {
                    root = H5Gcreate2(file, "model_weights", chdf5_p_default(), chdf5_p_default(), chdf5_p_default())
                    for name in layers + ["top_level_model_weights"] {
                        count(H5Lmove(file, name, root, name, chdf5_p_default(), chdf5_p_default()))
                    }
                    count(H5Adelete(file, "layer_names"))
                }
                defer { if fullModel { H5Gclose(root) } }
                count(setFixedStrings(root, "layer_names", weighted))
                for layer in weighted {
                    let group = H5Gopen2(root, layer, chdf5_p_default())
                    defer { H5Gclose(group) }
                    count(setFixedStrings(group, "weight_names", ["\(layer)/kernel:0", "\(layer)/bias:0"]))
                    for name in ["kernel", "bias"] {
                        count(H5Lmove(group, "\(layer)/\(name)", group, "\(layer)/\(name):0",
                                      chdf5_p_default(), chdf5_p_default()))
                    }
                }
                return failures == 0 ? 0 : -1
            }
            let imported = try Checkpoint.read(from: path, expecting: configuration)
            #expect(imported == Checkpoint(configuration: configuration, parameters: checkpoint.parameters))

            try modify(path) { file in
                H5Ldelete(file, (fullModel ? "model_weights/" : "") + "conv2d_2/conv2d_2/bias:0", chdf5_p_default())
            }
            #expect(try readError(path, expecting: configuration).description == path + ": missing dataset "
                + (fullModel ? "model_weights/" : "") + "conv2d_2/conv2d_2/bias:0")
        }
    }

    // MARK: Errors

    @Test func notAnHDF5File() throws {
        try withTemporaryDirectory { dir in
            try writeBytes(Array("just some text\n".utf8), dir + "/t.h5")
            #expect(try readError(dir + "/t.h5").description == dir + "/t.h5: not an HDF5 file")
            #expect(try readError(dir + "/none.h5").description == dir + "/none.h5: No such file or directory")
            #expect(try readError(dir).description == dir + ": not a regular file")
        }
    }

    @Test func truncatedFile() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            try makeCheckpoint(Self.small, withState: true).write(to: path)
            let bytes = try readBytes(path)
            try writeBytes(Array(bytes[..<(bytes.count / 2)]), path)
            #expect(try readError(path).description == path + ": truncated: \(bytes.count / 2) of \(bytes.count) bytes")
            try writeBytes(Array(bytes[..<100]), path)
            #expect(try readError(path).description == path + ": truncated: 100 bytes, less than its 512-byte checkpoint header")

            // Without the header (as before it existed), HDF5's superblock tells.
            try makeCheckpoint(Self.small, withState: true).write(to: path, operations: .system, header: false)
            let plain = try readBytes(path)
            try writeBytes(Array(plain[..<(plain.count / 2)]), path)
            #expect(try readError(path).description == path + ": truncated HDF5 file: \(plain.count / 2) bytes,"
                + " its superblock says \(plain.count)")
        }
    }

    @Test func configurationMismatchListsTheFields() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            try makeCheckpoint(Self.small, withState: true).write(to: path)
            let other = UNetConfiguration(rows: 16, cols: 16, filters: 4, depth: 3, upsample: .nearest)
            #expect(try readError(path, expecting: other).description == path
                + ": checkpoint is for another configuration (checkpoint vs this run): filters 2 vs 4, depth 2 vs 3")
        }
    }

    @Test func missingDataset() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            try makeCheckpoint(Self.small, withState: true).write(to: path)
            try modify(path) { file in H5Ldelete(file, "conv2d_3/conv2d_3/kernel", chdf5_p_default()) }
            #expect(try readError(path).description == path + ": missing dataset conv2d_3/conv2d_3/kernel")
        }
    }

    /// One flipped bit in a weight or a moment: the whole-file CRC-32 refuses the file before HDF5
    /// reads it; with the header recomputed over the damage (or without a header, as files written
    /// before it existed), the FNV-1a checksums inside still catch it.
    @Test func corruptedWeightOrMomentFailsTheChecksum() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            for header in [true, false] {
                try makeCheckpoint(Self.small, withState: true).write(to: path, operations: .system, header: header)
                let original = try readBytes(path)
                for (dataset, what) in [("conv2d_1/conv2d_1/kernel", "the weights"),
                                        ("unet_trainer/training_state/adam_v", "unet_trainer/training_state/adam_v")] {
                    let offset = try #require(dataOffset(path, dataset))
                    var bytes = original
                    bytes[offset + 5] ^= 0x10
                    try writeBytes(bytes, path)
                    if header {
                        let error = try readError(path)
                        #expect(error.description.hasPrefix(path + ": checksum mismatch: the file is damaged (expected 0x"))
                        #expect(error.description.contains(", found 0x"))
                        try restamp(path)
                    }
                    let error = try readError(path)
                    #expect(error.description.hasPrefix(path + ": checksum mismatch in \(what) (stored 0x"))
                    #expect(error.description.hasSuffix("): the file is corrupt"))
                }
            }
        }
    }

    // MARK: The header

    @Test func crc32IsZlibs() {
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum("123456789") == 0xCBF4_3926)
        #expect(CRC32.checksum("The quick brown fox jumps over the lazy dog") == 0x414F_A339)
        // Slicing-by-8 over any length and alignment, in pieces, equals the bytewise definition.
        var rng = SeededGenerator(seed: 5)
        let bytes = (0..<1000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        func bytewise(_ data: ArraySlice<UInt8>) -> UInt32 {
            var crc: UInt32 = 0xFFFF_FFFF
            for byte in data {
                crc ^= UInt32(byte)
                for _ in 0..<8 { crc = crc & 1 != 0 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
            }
            return ~crc
        }
        for (start, end) in [(0, 1000), (1, 999), (3, 11), (7, 8), (5, 5), (13, 700)] {
            var crc = CRC32()
            let middle = (start + end) / 2 + 1
            bytes[start..<min(middle, end)].withUnsafeBytes { crc.update($0) }
            bytes[min(middle, end)..<end].withUnsafeBytes { crc.update($0) }
            #expect(crc.value == bytewise(bytes[start..<end]), "\(start)..<\(end)")
        }
    }

    /// The file is the 512-byte header, then HDF5 (its superblock at byte 512); the header records
    /// the length and the CRC-32 of the rest, and its own CRC-32.
    @Test func headerRecordsLengthAndChecksum() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            try makeCheckpoint(Self.small, withState: true).write(to: path)
            let bytes = try readBytes(path)
            func field<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
                bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
            }
            #expect(Array(bytes[0..<8]) == Array("UNETCKPT".utf8))
            #expect(field(8, UInt32.self) == 1 && field(12, UInt32.self) == 512)
            #expect(field(16, UInt64.self) == UInt64(bytes.count))
            #expect(field(24, UInt32.self) == CRC32.checksum(Array(bytes[512...])))
            var block = Array(bytes[0..<512])
            block.replaceSubrange(28..<32, with: [0, 0, 0, 0])
            #expect(field(28, UInt32.self) == CRC32.checksum(block))
            #expect(String(decoding: bytes[32..<64], as: UTF8.self) == "UNetTrainer checkpoint. An HDF5 ")
            #expect(Array(bytes[512..<520]) == [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
            #expect(try CheckpointHeader.verify(path) == .verified)
        }
    }

    /// Each kind of damage to a checkpoint with the header is refused by the header check, in one
    /// line, before HDF5 is called.
    @Test func damagedFilesAreRefusedBeforeHDF5() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            try makeCheckpoint(Self.small, withState: true).write(to: path)
            let good = try readBytes(path)
            let n = good.count
            func error(_ change: (inout [UInt8]) -> Void, restamp: Bool = false) throws -> String {
                var bytes = good
                change(&bytes)
                if restamp {  // the header made consistent again over the change
                    bytes.withUnsafeMutableBytes { raw in
                        raw.storeBytes(of: 0, toByteOffset: 28, as: UInt32.self)
                        let crc = CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<512]))
                        raw.storeBytes(of: crc.littleEndian, toByteOffset: 28, as: UInt32.self)
                    }
                }
                try writeBytes(bytes, path)
                #expect(throws: DataError.self) { try CheckpointHeader.verify(path) }
                return String(try readError(path).description.dropFirst(path.count + 2))
            }
            let crc = good.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 24, as: UInt32.self) }
            let flipped = try error { $0[n - 10] ^= 0x04 }
            #expect(flipped.hasPrefix("checksum mismatch: the file is damaged (expected \(hex(crc)), found 0x"))
            #expect(try error { $0.removeLast(1000) } == "truncated: \(n - 1000) of \(n) bytes")
            #expect(try error { $0 += [0, 1, 2] } == "3 bytes after the end of the checkpoint (\(n) bytes): the file is damaged")
            #expect(try error { $0[40] ^= 1 }.hasPrefix("checksum mismatch in the checkpoint header: the file is damaged (expected 0x"))
            #expect(try error { $0[18] ^= 1 }.hasPrefix("checksum mismatch in the checkpoint header"))
            #expect(try error { $0[2] = UInt8(ascii: "x") }
                == "unrecognised 512-byte block before the HDF5 data (a damaged checkpoint header?): not read")
            #expect(try error({ $0[8] = 2 }, restamp: true) == "checkpoint header version 2, this program reads version 1")
            #expect(try error({ $0[13] = 4 }, restamp: true) == "invalid checkpoint header: a 1024-byte user block, \(n) bytes in all")
            #expect(try error({ $0[23] = 0x10 }, restamp: true) == "truncated: \(n) of \(UInt64(n) + 0x1000_0000_0000_0000) bytes")
            #expect(try error({ $0[24] ^= 0xff }, restamp: true).hasPrefix("checksum mismatch: the file is damaged"))
            #expect(try error { $0 = Array($0[0..<511]) } == "truncated: 511 bytes, less than its 512-byte checkpoint header")
            #expect(try error { $0 = Array("UNETCKPT".utf8) } == "truncated: 8 bytes, less than its 512-byte checkpoint header")
            #expect(try error { $0 = Array("UNETCK".utf8) } == "not an HDF5 file")
        }
    }

    /// Files without the header — a Keras weights file, or a checkpoint written before the header
    /// existed — are still read (through HDF5, unchecked beforehand).
    @Test func filesWithoutTheHeaderStillRead() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/old.h5"
            let checkpoint = makeCheckpoint(Self.small, withState: true)
            try checkpoint.write(to: path, operations: .system, header: false)
            let bytes = try readBytes(path)
            #expect(Array(bytes[0..<8]) == [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
            #expect(try CheckpointHeader.verify(path) == .plainHDF5)
            #expect(try Checkpoint.read(from: path) == checkpoint)
            // The same HDF5 layout as with the header, byte for byte after it.
            try checkpoint.write(to: dir + "/new.h5")
            let new = try readBytes(dir + "/new.h5")
            #expect(new.count == bytes.count + 512)
        }
    }

    // MARK: Failed writes

    @Test func failedWritesLeaveThePreviousFileAndNoTemporary() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            let good = makeCheckpoint(Self.small, withState: true)
            try good.write(to: path)
            let before = try readBytes(path)

            // Into a folder that does not exist.
            let missing = #expect(throws: DataError.self) { try good.write(to: dir + "/missing/c.h5") }
            #expect(missing?.description.hasPrefix(dir + "/missing/c.h5: cannot create temporary file \(dir)/missing/.c.h5.tmp-") == true)
            #expect(missing?.description.hasSuffix(": No such file or directory") == true)
            // Into a "folder" that is a regular file (what a chmod cannot do to root).
            let notFolder = #expect(throws: DataError.self) { try good.write(to: path + "/c.h5") }
            #expect(notFolder?.description.hasPrefix(path + "/c.h5: cannot create temporary file ") == true)
            #expect(notFolder?.description.hasSuffix(": Not a directory") == true)
            // Over a directory: the file is written under its temporary name, the rename fails.
            try FileManager.default.createDirectory(atPath: dir + "/folder/x", withIntermediateDirectories: true)
            let overFolder = #expect(throws: DataError.self) { try good.write(to: dir + "/folder") }
            #expect(overFolder?.description == dir + "/folder: cannot rename into place: Is a directory")
            // Over the previous file, with Adam moments of the wrong length.
            var bad = good
            bad.state!.adamM.removeLast()
            let mismatch = #expect(throws: DataError.self) { try bad.write(to: path) }
            #expect(mismatch?.description.contains("Adam moments") == true)

            #expect(listing(dir) == ["c.h5", "folder"])
            #expect(try readBytes(path) == before)
            #expect(try Checkpoint.read(from: path) == good)
        }
    }

    /// Every system call of a write failing as the system reports it (ENOSPC part-way, a short
    /// write, EIO from fsync, EDQUOT from close as NFS does, a failing rename, EACCES and EROFS
    /// on create): one line naming the file, the step and the reason; the previous checkpoint
    /// byte-identical and loadable; no temporary file left and every descriptor closed.
    @Test(arguments: SimulatedFailure.allCases)
    func simulatedWriteFailureKeepsThePreviousCheckpoint(failure: SimulatedFailure) throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            let previous = makeCheckpoint(Self.small, withState: true)
            try previous.write(to: path)
            let before = try readBytes(path)
            var next = previous
            next.state!.epoch += 1
            next.parameters[0] += 1

            let recorder = FailingOperations(failure)
            let error = #expect(throws: DataError.self) { try next.write(to: path, operations: recorder.operations) }
            let text = error?.description ?? ""
            #expect(text.hasPrefix(path + ": " + failure.step), "\(text)")
            #expect(text.contains(": " + failure.reason), "\(text)")
            #expect(text.hasSuffix(" (the previous file is unchanged)"), "\(text)")
            #expect(!text.contains("\n"))
            #expect(recorder.openDescriptors.isEmpty)
            #expect(listing(dir) == ["c.h5"])
            #expect(try readBytes(path) == before)
            #expect(try Checkpoint.read(from: path) == previous)
        }
    }

    /// The folder cannot be synced after the rename: the new checkpoint is in place (and says so).
    @Test func folderSyncFailureAfterTheRenameIsReported() throws {
        try withTemporaryDirectory { dir in
            let path = dir + "/c.h5"
            let previous = makeCheckpoint(Self.small, withState: true)
            try previous.write(to: path)
            var next = previous
            next.state!.epoch += 1
            let recorder = FailingOperations(.folderSync)
            let error = #expect(throws: DataError.self) { try next.write(to: path, operations: recorder.operations) }
            #expect(error?.description == path + ": written, but its folder cannot be synced to disk: Input/output error")
            #expect(recorder.openDescriptors.isEmpty)
            #expect(listing(dir) == ["c.h5"])
            #expect(try Checkpoint.read(from: path) == next)
        }
    }
}

/// A failure `FailingOperations` injects.
enum SimulatedFailure: CaseIterable, Sendable, CustomTestStringConvertible {
    case noSpacePartWay, shortWrite, fsyncIOError, closeQuotaExceeded, renameCrossDevice, createDenied, createReadOnly
    case folderSync

    static let allCases: [SimulatedFailure] = [.noSpacePartWay, .shortWrite, .fsyncIOError, .closeQuotaExceeded,
                                               .renameCrossDevice, .createDenied, .createReadOnly]

    var testDescription: String { "\(self)" }

    /// How the message starts after the path, and the reason it ends with.
    var step: String {
        switch self {
        case .noSpacePartWay, .shortWrite: "cannot write temporary file "
        case .fsyncIOError: "cannot flush temporary file "
        case .closeQuotaExceeded: "cannot close temporary file "
        case .renameCrossDevice: "cannot rename into place"
        case .createDenied, .createReadOnly: "cannot create temporary file "
        case .folderSync: "written, but"
        }
    }

    var reason: String {
        switch self {
        case .noSpacePartWay: "No space left on device"
        case .shortWrite: "the system accepted only 8192 of "
        case .fsyncIOError, .folderSync: "Input/output error"
        case .closeQuotaExceeded: "Disk quota exceeded"
        case .renameCrossDevice: "Invalid cross-device link"
        case .createDenied: "Permission denied"
        case .createReadOnly: "Read-only file system"
        }
    }
}

/// The real system calls, with one failing as `failure` says; records which descriptors are open.
final class FailingOperations: @unchecked Sendable {
    private let lock = NSLock()
    private var open: Set<Int32> = []
    private var written = 0
    private var fsyncs = 0
    let failure: SimulatedFailure

    init(_ failure: SimulatedFailure) { self.failure = failure }

    var openDescriptors: Set<Int32> { lock.withLock { open } }

    var operations: FileOperations {
        let system = FileOperations.system
        return FileOperations(
            open: { path, flags, mode in
                self.lock.withLock {
                    if flags & O_CREAT != 0, self.failure == .createDenied || self.failure == .createReadOnly {
                        errno = self.failure == .createDenied ? EACCES : EROFS
                        return -1
                    }
                    let fd = system.open(path, flags, mode)
                    if fd >= 0 { self.open.insert(fd) }
                    return fd
                }
            },
            write: { fd, bytes, count in
                self.lock.withLock {
                    if self.failure == .noSpacePartWay || self.failure == .shortWrite, self.written >= 8192 {
                        if self.failure == .shortWrite { return 0 }
                        errno = ENOSPC
                        return -1
                    }
                    let partWay = self.failure == .noSpacePartWay || self.failure == .shortWrite
                    let n = system.write(fd, bytes, partWay ? min(count, 8192 - self.written) : count)
                    if n > 0 { self.written += n }
                    return n
                }
            },
            fsync: { fd in
                self.lock.withLock {
                    self.fsyncs += 1
                    if self.failure == .fsyncIOError && self.fsyncs == 1 || self.failure == .folderSync && self.fsyncs == 2 {
                        errno = EIO
                        return -1
                    }
                    return system.fsync(fd)
                }
            },
            close: { fd in
                self.lock.withLock {
                    self.open.remove(fd)
                    let result = system.close(fd)
                    if self.failure == .closeQuotaExceeded {
                        errno = EDQUOT
                        return -1
                    }
                    return result
                }
            },
            rename: { from, to in
                if self.failure == .renameCrossDevice {
                    errno = EXDEV
                    return -1
                }
                return system.rename(from, to)
            })
    }
}

// MARK: - Helpers

/// The Keras fixtures (Fixtures/keras, written by make_keras_fixtures.py); their tests are
/// skipped until the fixtures are in the tree.
private let kerasFixturesPresent = ["d2_nearest", "d2_transpose"].allSatisfy {
    FileManager.default.fileExists(atPath: fixturesDirectory.appendingPathComponent("keras/\($0)/legacy_weights.h5").path)
}

/// A Keras fixture's folder and its model (rows 32, cols 48, filters 4, depth 2).
private func kerasFixture(_ name: String) throws -> (folder: String, configuration: UNetConfiguration) {
    let upsample = try #require(Upsampling(rawValue: String(name.split(separator: "_")[1])))
    return (fixturesDirectory.appendingPathComponent("keras/\(name)").path,
            UNetConfiguration(rows: 32, cols: 48, filters: 4, depth: 2, upsample: upsample))
}

/// A checkpoint with seeded, arbitrary (non-zero, sign-mixed) values everywhere.
private func makeCheckpoint(_ configuration: UNetConfiguration, withState: Bool) -> Checkpoint {
    var rng = SeededGenerator(seed: 7, stream: 1)
    let n = configuration.parameterCount
    func values(_ scale: Double) -> [Float] { (0..<n).map { _ in Float(rng.uniform(-scale...scale)) } }
    let parameters = values(0.5)
    guard withState else { return Checkpoint(configuration: configuration, parameters: parameters) }
    let history = [
        EpochRecord(epoch: 1, loss: -0.25, dice: 0.25, valLoss: -0.2, valDice: 0.2, valKaggle: 0.5,
                    imagesPerSecond: 123.5, seconds: 9.75),
        EpochRecord(epoch: 2, loss: -0.3125, dice: 0.3125, imagesPerSecond: 130, seconds: 9.25),
    ]
    let state = TrainingState(epoch: 2, adamStep: 40, adamM: values(1e-3), adamV: values(1e-6).map(abs),
                              learningRate: 1e-3, mean: 99.75, std: 51.3, seed: 0xDEAD_BEEF_0123_4567,
                              bestScore: -0.2, history: history)
    return Checkpoint(configuration: configuration, parameters: parameters, state: state)
}

private func readError(_ path: String, expecting: UNetConfiguration? = nil) throws -> DataError {
    do {
        _ = try Checkpoint.read(from: path, expecting: expecting)
    } catch let error as DataError {
        return error
    }
    throw CheckpointTestFailure(message: "\(path) read without error")
}

private struct CheckpointTestFailure: Error { let message: String }

/// Opens `path` for writing and applies `change` (expected to succeed), then recomputes the
/// checkpoint header (if the file has one) so that the file reads as written that way.
private func modify(_ path: String, _ change: (hid_t) -> herr_t) throws {
    let file = H5Fopen(path, chdf5_acc_rdwr(), chdf5_p_default())
    guard file >= 0 else { throw CheckpointTestFailure(message: "cannot open \(path)") }
    let changed = change(file)
    H5Fclose(file)
    guard changed >= 0 else { throw CheckpointTestFailure(message: "cannot modify \(path)") }
    try restamp(path)
}

/// Recomputes the header of the checkpoint at `path` over its current bytes (no-op without one).
func restamp(_ path: String) throws {
    var bytes = try readBytes(path)
    guard bytes.starts(with: CheckpointHeader.magic) else { return }
    bytes.withUnsafeMutableBytes { CheckpointHeader.stamp($0) }
    try writeBytes(bytes, path)
}

/// Replaces the attribute `name` by an array of fixed-length, NUL-padded ASCII strings (numpy's `S`
/// dtype, as h5py 2 stored Keras 2's lists of bytes).
private func setFixedStrings(_ object: hid_t, _ name: String, _ strings: [String]) -> herr_t {
    if H5Aexists(object, name) > 0 { H5Adelete(object, name) }
    let size = strings.map(\.utf8.count).max() ?? 1
    let type = H5Tcopy(chdf5_c_s1())
    defer { H5Tclose(type) }
    H5Tset_size(type, size)
    H5Tset_strpad(type, H5T_STR_NULLPAD)
    var dims = [hsize_t(strings.count)]
    let space = H5Screate_simple(1, &dims, nil)
    defer { H5Sclose(space) }
    let attribute = H5Acreate2(object, name, type, space, chdf5_p_default(), chdf5_p_default())
    defer { H5Aclose(attribute) }
    let bytes = strings.flatMap { Array($0.utf8) + [UInt8](repeating: 0, count: size - $0.utf8.count) }
    return H5Awrite(attribute, type, bytes)
}

/// The byte offset of a contiguous dataset's data in the file.
private func dataOffset(_ path: String, _ dataset: String) -> Int? {
    let file = H5Fopen(path, chdf5_acc_rdonly(), chdf5_p_default())
    defer { H5Fclose(file) }
    let id = H5Dopen2(file, dataset, chdf5_p_default())
    defer { H5Dclose(id) }
    let offset = H5Dget_offset(id)
    return offset == haddr_t.max ? nil : Int(offset)
}

private func datasetShape(_ location: hid_t, _ path: String) -> [Int]? {
    let dataset = H5Dopen2(location, path, chdf5_p_default())
    guard dataset >= 0 else { return nil }
    defer { H5Dclose(dataset) }
    let space = H5Dget_space(dataset)
    defer { H5Sclose(space) }
    return shape(ofSpace: space)
}

private func shape(ofSpace space: hid_t) -> [Int] {
    var dims = [hsize_t](repeating: 0, count: Int(max(0, H5Sget_simple_extent_ndims(space))))
    H5Sget_simple_extent_dims(space, &dims, nil)
    return dims.map { Int($0) }
}

/// A string attribute read with plain HDF5 calls (variable-length strings, as Keras writes them);
/// an empty array of any type reads as [].
private func stringsAttribute(_ object: hid_t, _ name: String) -> [String]? {
    let attribute = H5Aopen(object, name, chdf5_p_default())
    guard attribute >= 0 else { return nil }
    defer { H5Aclose(attribute) }
    let space = H5Aget_space(attribute)
    defer { H5Sclose(space) }
    let count = Int(H5Sget_simple_extent_npoints(space))
    if count == 0 { return [] }
    let memoryType = H5Tcopy(chdf5_c_s1())
    H5Tset_size(memoryType, chdf5_variable())
    defer { H5Tclose(memoryType) }
    var pointers = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
    guard H5Aread(attribute, memoryType, &pointers) >= 0 else { return nil }
    defer { H5Dvlen_reclaim(memoryType, space, chdf5_p_default(), &pointers) }
    return pointers.map { $0.map { String(cString: $0) } ?? "" }
}

/// Every group, dataset and attribute of an HDF5 file, one line each in name order, with types and
/// shapes, and the values of string attributes: what h5py's `visititems` plus `attrs` shows.
private func hdf5Tree(_ path: String) -> [String] {
    let file = H5Fopen(path, chdf5_acc_rdonly(), chdf5_p_default())
    guard file >= 0 else { return ["cannot open \(path)"] }
    defer { H5Fclose(file) }
    var lines: [String] = []

    func name(_ get: (UnsafeMutablePointer<CChar>?, Int) -> Int) -> String {
        var buffer = [CChar](repeating: 0, count: get(nil, 0) + 1)
        let length = get(&buffer, buffer.count)
        return String(decoding: buffer[..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
    func typeText(_ type: hid_t) -> String {
        let size = H5Tget_size(type)
        switch H5Tget_class(type) {
        case H5T_STRING:
            let cset = H5Tget_cset(type) == H5T_CSET_UTF8 ? "UTF-8" : "ASCII"
            return H5Tis_variable_str(type) > 0 ? "string vlen \(cset)"
                : "string fixed \(size) pad \(H5Tget_strpad(type).rawValue) \(cset)"
        case H5T_FLOAT: return "float\(size * 8) order \(H5Tget_order(type).rawValue)"
        case H5T_INTEGER: return "int\(size * 8) sign \(H5Tget_sign(type).rawValue) order \(H5Tget_order(type).rawValue)"
        default: return "class \(H5Tget_class(type).rawValue)"
        }
    }
    func shapeText(_ space: hid_t) -> String {
        H5Sget_simple_extent_type(space) == H5S_SCALAR ? "scalar" : "\(shape(ofSpace: space))"
    }
    func attributes(_ object: hid_t, _ at: String) {
        var info = H5O_info_t()
        H5Oget_info2(object, &info, UInt32(H5O_INFO_NUM_ATTRS))
        for i in 0..<info.num_attrs {
            let attribute = H5Aopen_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, i, chdf5_p_default(), chdf5_p_default())
            defer { H5Aclose(attribute) }
            let attributeName = name { H5Aget_name(attribute, $1, $0) }
            let type = H5Aget_type(attribute), space = H5Aget_space(attribute)
            defer { H5Tclose(type); H5Sclose(space) }
            let value = H5Tget_class(type) == H5T_STRING
                ? " = \(stringsAttribute(object, attributeName) ?? [])" : ""
            lines.append("\(at) @\(attributeName): \(typeText(type)) \(shapeText(space))\(value)")
        }
    }
    func visit(_ group: hid_t, _ at: String) {
        attributes(group, at)
        var info = H5G_info_t()
        H5Gget_info(group, &info)
        for i in 0..<info.nlinks {
            let child = name { H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, $0, $1, chdf5_p_default()) }
            let childPath = at == "/" ? "/" + child : at + "/" + child
            let object = H5Oopen(group, child, chdf5_p_default())
            defer { H5Oclose(object) }
            switch H5Iget_type(object) {
            case H5I_GROUP:
                lines.append("\(childPath) group")
                visit(object, childPath)
            case H5I_DATASET:
                let type = H5Dget_type(object), space = H5Dget_space(object), plist = H5Dget_create_plist(object)
                defer { H5Tclose(type); H5Sclose(space); H5Pclose(plist) }
                lines.append("\(childPath) dataset \(typeText(type)) \(shapeText(space)) layout \(H5Pget_layout(plist).rawValue)")
                attributes(object, childPath)
            default:
                lines.append("\(childPath) other")
            }
        }
    }
    visit(file, "/")
    return lines
}
