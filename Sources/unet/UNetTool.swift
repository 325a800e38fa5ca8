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
              unet train   --data data --checkpoint unet.h5
              unet predict --data data --checkpoint unet.h5 --out imgs_mask_test.npy

            train, predict, evaluate and bench run data-parallel under mpirun, e.g.
              mpirun -np 4 -x OPENBLAS_NUM_THREADS=2 unet train --data data --checkpoint unet.h5
            Rank 0 alone reads the data and the checkpoint and writes every output.

            Every subcommand's --help says what it reads, what it writes, and gives an example.
            """,
        version: "0.1.0",
        subcommands: [Synth.self, Prepare.self, Train.self, Predict.self, Submit.self, Run.self, Evaluate.self, Compare.self, Bench.self, Info.self]
    )
}
