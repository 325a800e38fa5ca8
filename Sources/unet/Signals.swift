#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Synchronization
import Distributed

/// SIGTERM and SIGINT (what SLURM and mpirun send on preemption or a cancel, and Ctrl-C), and
/// SIGUSR1 (which mpirun forwards to every rank without killing the job: the launch scripts
/// turn a SIGTERM into it) as a request to stop. The handler only records the signal; the
/// training loop polls it at every step, every rank stops after the same step, rank 0 writes a
/// checkpoint of where it stopped, and every rank exits cleanly (`Job.run`: 128 + the signal
/// number alone, 0 under mpirun). A second SIGINT (Ctrl-C twice) ends the process at once, as
/// usual; SIGTERM and SIGUSR1 stay caught, because they often come twice (SLURM signals every
/// process of the job, mpirun signals the ranks again, and Open MPI's daemons deliver a
/// forwarded signal to a rank's process and its process group).
enum StopSignal {
    private static let signal = Atomic<Int32>(0)

    /// The first stop signal received, 0 before any.
    static var received: Int32 { signal.load(ordering: .relaxed) }

    static func install() {
        _ = received  // initialise the atomic before a handler can touch it
        for number in [SIGTERM, SIGINT, SIGUSR1] {
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { number in
                _ = StopSignal.signal.compareExchange(expected: 0, desired: number, ordering: .relaxed)
            }
            sigemptyset(&action.sa_mask)
            action.sa_flags = SA_RESTART | (number == SIGINT ? Int32(bitPattern: UInt32(SA_RESETHAND)) : 0)
            sigaction(number, &action, nil)
        }
    }

    static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGUSR1: "SIGUSR1"
        case 0: "a stop signal on another rank"
        default: "signal \(number)"
        }
    }
}

/// Thrown on every rank when training stopped on a signal after saving its position; `Job.run`
/// turns it into a clean exit (MPI finalized) with status 128 + the signal.
struct StoppedBySignal: Error, CustomStringConvertible {
    let signal: Int32
    var description: String { "stopped by \(StopSignal.name(signal))" }
}

/// Failure injection for the reliability tests (Launch/test-reliability.sh), read from the
/// environment once; inert unless set:
/// - `UNET_TEST_CORRUPT_RANK=R`: rank R's replica drifts after each epoch (the fingerprint check
///   must catch it);
/// - `UNET_TEST_SIGNAL_AT=R:S`: rank R raises SIGTERM after Adam step S (preemption);
/// - `UNET_TEST_STALL_AT=R:S:SECONDS`: rank R sleeps SECONDS after Adam step S (the stall
///   watchdog must abort the job);
/// - `UNET_TEST_STEP_DELAY=SECONDS`: every rank sleeps after every step (a slow job, so that a
///   signal lands mid-run however fast the machine is; the numbers are unchanged).
struct TestHooks {
    let rank: Int
    let corruptRank: Int?
    private let signalAt: Int?
    private let stallAt: (step: Int, seconds: Double)?
    private let stepDelay: Double?

    init(rank: Int, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.rank = rank
        corruptRank = environment["UNET_TEST_CORRUPT_RANK"].flatMap { Int($0) }
        func fields(_ name: String) -> [Double]? {
            guard let text = environment[name] else { return nil }
            let parts = text.split(separator: ":").compactMap { Double($0) }
            guard parts.count >= 2, Int(parts[0]) == rank else { return nil }
            return parts
        }
        signalAt = fields("UNET_TEST_SIGNAL_AT").map { Int($0[1]) }
        stallAt = fields("UNET_TEST_STALL_AT").map { (Int($0[1]), $0.count > 2 ? $0[2] : 3600) }
        stepDelay = environment["UNET_TEST_STEP_DELAY"].flatMap { Double($0) }.flatMap { $0 > 0 ? $0 : nil }
    }

    func afterStep(_ adamStep: Int) {
        if let stepDelay { sleepSeconds(stepDelay) }
        if signalAt == adamStep { raise(SIGTERM) }
        if let stallAt, stallAt.step == adamStep {
            sleepSeconds(stallAt.seconds)
        }
    }
}
