import ArgumentParser
import Foundation

@main
struct UNetTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "Segment nerves in ultrasound images with a U-Net trained over MPI.",
        discussion: """
            The pipeline of the Kaggle "Ultrasound Nerve Segmentation" tutorial,
            natively:

              unet synth   --out raw              # a synthetic set, without Kaggle's
              unet prepare --raw raw --out data   # TIFFs to NumPy .npy files
              unet train   --data data --checkpoint unet.h5
              unet predict --data data --checkpoint unet.h5 --out imgs_mask_test.npy
              unet submit  --data data --masks imgs_mask_test.npy --out submission.csv
              unet report  --checkpoint unet.h5 --data data --out report.html

            train, predict, evaluate, report and bench run data-parallel under
            mpirun, e.g.
              mpirun -np 4 -x OPENBLAS_NUM_THREADS=2 unet train --data data \\
                  --checkpoint unet.h5
            Rank 0 alone reads the data and the checkpoint and writes every output.

            Every subcommand's --help says what it reads, what it writes, and gives
            an example.
            """,
        version: "0.1.0",
        subcommands: [Synth.self, Prepare.self, Train.self, Predict.self, Submit.self, Run.self, Evaluate.self, Report.self, Compare.self, Bench.self, Info.self]
    )

    /// ArgumentParser's `main`, except that an error is one line, as every other error of the
    /// tool: `error: <problem>`, and for a bad command line a pointer to `--help` instead of the
    /// usage block (exit status 64, EX_USAGE, as ArgumentParser exits). Help and version requests
    /// print as usual.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }
            // An ExitCode thrown after the command printed its own error has no message.
            guard var problem = message(for: error).split(separator: "\n").first.map(String.init) else {
                Foundation.exit(code.rawValue)
            }
            if problem.hasPrefix("Error: ") { problem.removeFirst("Error: ".count) }
            if code == .validationFailure,
               let see = fullMessage(for: error).split(separator: "\n").first(where: { $0.contains("See '") }),
               let start = see.firstIndex(of: "'"), let end = see.lastIndex(of: "'"), start < end {
                problem += " (see \(see[start...end]))"
            }
            Terminal.writeError("error: \(problem)\n")
            Foundation.exit(code.rawValue)
        }
    }
}
