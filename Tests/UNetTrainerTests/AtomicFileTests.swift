import Foundation
import Testing
@testable import DataIO

@Suite("Atomic outputs")
struct AtomicFileTests {
    @Test func stagedFilesAppearTogetherOnCommit() throws {
        try withTemporaryDirectory { dir in
            let outputs = StagedOutputs()
            try outputs.stage(dir + "/a") { try writeBytes([1], $0) }
            try outputs.stage(dir + "/b") { try writeBytes([2], $0) }
            #expect(!FileManager.default.fileExists(atPath: dir + "/a"))  // staged, not yet visible
            try outputs.commit()
            #expect(listing(dir) == ["a", "b"])
        }
    }

    @Test func aFailedRenameLeavesNoneOfTheSet() throws {
        try withTemporaryDirectory { dir in
            // "b" is a non-empty folder: renaming a file over it fails.
            try FileManager.default.createDirectory(atPath: dir + "/b/x", withIntermediateDirectories: true)
            let outputs = StagedOutputs()
            try outputs.stage(dir + "/a") { try writeBytes([1], $0) }
            try outputs.stage(dir + "/b") { try writeBytes([2], $0) }
            let error = #expect(throws: DataError.self) { try outputs.commit() }
            #expect(error?.path == dir + "/b")
            #expect(listing(dir) == ["b"])  // no "a", no temporaries
        }
    }

    @Test func aFailedWriteRemovesItsTemporary() throws {
        try withTemporaryDirectory { dir in
            struct Boom: Error {}
            let outputs = StagedOutputs()
            try outputs.stage(dir + "/a") { try writeBytes([1], $0) }
            #expect(throws: Boom.self) {
                try outputs.stage(dir + "/b") { try writeBytes([2], $0); throw Boom() }
            }
            outputs.discard()
            #expect(listing(dir).isEmpty)
        }
    }

    @Test func temporaryNamesAreUniqueAndHidden() {
        let a = StagedOutputs.temporaryPath(for: "/x/y.npy")
        let b = StagedOutputs.temporaryPath(for: "/x/y.npy")
        #expect(a != b)
        #expect(a.hasPrefix("/x/.y.npy.tmp-"))
    }
}
