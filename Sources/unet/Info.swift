import ArgumentParser
import CHDF5
import COpenBLAS
import DataIO
import Distributed
import Pictures

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the native libraries in use and this process's place in MPI.",
        discussion: """
            Reads nothing and writes nothing: a quick check that Open MPI, OpenBLAS,
            libtiff, HDF5 and libpng are found, and that mpirun starts the ranks you
            expect.

            Examples:
              unet info
              mpirun -np 2 unet info
            """
    )

    func run() throws {
        let comm = MPICommunicator.world
        var major: UInt32 = 0, minor: UInt32 = 0, release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        let blas = openblas_get_config().map { String(cString: $0) } ?? "unknown"
        let lines = [
            "rank \(comm.rank) of \(comm.size)",
            "MPI: \(MPICommunicator.libraryVersion)",
            "OpenBLAS: \(blas), \(openblas_get_num_threads()) threads",
            "libtiff: \(TIFF.libraryVersion)",
            "HDF5: \(major).\(minor).\(release)",
            "libpng: \(PNG.libraryVersion)",
        ]
        // Ranks print in turn so their lines do not interleave.
        for r in 0..<comm.size {
            if r == comm.rank { print(lines.map { "[rank \(comm.rank)] \($0)" }.joined(separator: "\n")) }
            fflushStdout()
            try comm.barrier()
        }
    }
}
