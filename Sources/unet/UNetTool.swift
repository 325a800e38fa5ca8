import ArgumentParser

@main
struct UNetTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unet",
        abstract: "Segment nerves in ultrasound images with a U-Net, trained data-parallel over MPI.",
        discussion: """
            The pipeline of the Kaggle "Ultrasound Nerve Segmentation" tutorial, natively:

              unet synth   --out raw                 # a synthetic data set, if you have no Kaggle download
              unet prepare --raw raw --out data      # TIFFs to NumPy .npy files

            Every subcommand's --help says what it reads, what it writes, and gives an example.
            """,
        version: "0.1.0",
        subcommands: [Synth.self, Prepare.self, Train.self, Predict.self, Evaluate.self, Compare.self, Bench.self, Info.self]
    )
}
