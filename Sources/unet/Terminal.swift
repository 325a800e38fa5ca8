#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Distributed
import Training
import Synchronization
import Kernels
import COpenBLAS

/// Output helpers shared by the subcommands: stderr writes, one-line errors, and a progress line
/// that redraws itself on a terminal and prints once at the end otherwise.
enum Terminal {
    static func writeError(_ text: String) { writeToStandardError(text) }

    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

    /// The width of the terminal on stderr (80 when unknown).
    static var columns: Int {
        var size = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        return 80
    }

    /// Prints `error: <message>` on one line and exits with status 1.
    static func fail(_ error: any Error) -> Never {
        writeError("error: \(error)\n")
        exit(1)
    }
}

/// A subcommand's body as one rank of the MPI job (a job of one rank without `mpirun`).
enum Job {
    /// Runs `body`; an error on any rank ends the whole job: with several ranks through
    /// `MPI_Abort`, after printing `[rank R] error: ...` (so no rank waits forever in a collective
    /// the failed one never reaches), alone as `error: ...` with exit status 1. A stop on a signal
    /// (`StoppedBySignal`, thrown by every rank after the same step) exits cleanly: with
    /// 128 + the signal number alone, with 0 under mpirun (see below).
    ///
    /// With several ranks, every collective is watched: one that waits longer than
    /// `collectiveTimeout` seconds (0: forever) aborts the job with a message naming the
    /// operation and the step (`StallWatchdog`).
    ///
    /// Before `body`, rank 0 warns when the ranks run different OpenBLAS kernels (`RankKernels`).
    ///
    /// `body` gets the rank's threads too: OPENBLAS_NUM_THREADS (or UNET_THREADS) as the rank's
    /// thread budget, spent on the kernels' own threads around a single-threaded OpenBLAS.
    static func run(collectiveTimeout: Double = 600, _ body: (any Communicator, KernelThreads) throws -> Void) {
        let world = MPICommunicator.world
        let threads = KernelThreads(KernelThreads.countFromEnvironment())
        if threads.count > 1 { openblas_set_num_threads(1) }
        var comm: any Communicator = world
        if world.size > 1 && collectiveTimeout > 0 {
            let watchdog = StallWatchdog(timeout: collectiveTimeout) { message in
                world.abort(code: 1, message: "error: \(message)")
            }
            comm = WatchedCommunicator(world, watchdog: watchdog)
        }
        do {
            if let warning = try RankKernels.mismatchWarning(comm) { Terminal.writeError(warning + "\n") }
            try body(comm, threads)
        } catch let stop as StoppedBySignal {
            // Alone, the usual status of a program ended by a signal. Under mpirun, 0 on every
            // rank: Open MPI takes any non-zero status for a failure and then spends
            // 2 x odls_base_sigkill_timeout killing ranks that are already gone (20 s instead of
            // 1 s with Launch/mpi-env.sh); the launch scripts know they sent the signal and exit
            // with 128 + it themselves.
            exit(comm.size > 1 ? 0 : 128 + stop.signal)
        } catch {
            if comm.size > 1 { comm.abort(code: 1, message: "error: \(error)") }
            Terminal.fail(error)
        }
    }
}

/// A progress line on stderr: redrawn in place on a terminal (at most 10 times a second), a single
/// final line when stderr is a file or a pipe.
final class ProgressLine: Sendable {
    private let label: String
    private let state = Mutex((lastDraw: 0.0, done: 0, total: 0))
    private let live = Terminal.standardErrorIsTerminal

    init(_ label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        let now = monotonicSeconds()
        let draw = state.withLock { s -> Bool in
            s.done = done
            s.total = total
            guard live, now - s.lastDraw >= 0.1 || done == total else { return false }
            s.lastDraw = now
            return true
        }
        if draw { Terminal.writeError("\r\(label) \(done)/\(total)\u{1B}[K") }
    }

    /// Ends the line with a summary.
    func finish(_ summary: String) {
        Terminal.writeError(live ? "\r\(label) \(summary)\u{1B}[K\n" : "\(label) \(summary)\n")
    }
}

func fflushStdout() { fflush(nil) }
