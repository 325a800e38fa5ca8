// swift-tools-version: 6.0
// UNetTrainer: a native Swift U-Net trainer for the Kaggle Ultrasound Nerve Segmentation data,
// data-parallel over MPI. The target list below is the architecture: native bindings (C*),
// then one module per concern, then the `unet` command-line tool.
import PackageDescription

let package = Package(
    name: "UNetTrainer",
    products: [
        .executable(name: "unet", targets: ["unet"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: Native bindings (system libraries found through pkg-config; shims only for macros).
        .systemLibrary(
            name: "CMPI", pkgConfig: "ompi-c",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CTIFF", pkgConfig: "libtiff-4",
            providers: [.apt(["libtiff-dev"])]),
        .systemLibrary(
            name: "CHDF5", pkgConfig: "hdf5-serial",
            providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(
            name: "CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"])]),

        // MARK: Distributed communication: the Communicator interface and its MPI implementation.
        .target(name: "Distributed", dependencies: ["CMPI"]),

        // MARK: Data I/O: NPY codec, TIFF through libtiff and PNG reading through libpng, dataset preparation.
        .target(name: "DataIO", dependencies: ["CTIFF", "CPNG"]),

        // MARK: Tensor kernels on Float32 NHWC buffers (forward/backward pairs; GEMMs through OpenBLAS).
        .target(name: "Kernels", dependencies: ["COpenBLAS"]),

        // MARK: The U-Net: configuration, Keras-named parameter table, forward and backward.
        .target(name: "Model", dependencies: ["Kernels", "Random"]),

        // MARK: Training: Dice loss and Kaggle score, Adam, the training loop.
        .target(name: "Training", dependencies: ["Model", "Kernels", "Random", "DataIO", "Distributed"]),

        // MARK: Checkpoints: HDF5 files in Keras' legacy .h5 weights layout, plus the training state
        // (the types of Training's run, stored).
        .target(name: "Checkpoint", dependencies: ["CHDF5", "Model", "DataIO", "Training"]),

        // MARK: Seeded, portable randomness (data generation, shuffles, initialisation).
        .target(name: "Random"),

        // MARK: The Kaggle submission: masks back to the image size, run-length encoded, submission.csv.
        .target(name: "Submission", dependencies: ["DataIO"]),

        // MARK: Pictures: PNG through libpng, mask outlines drawn over the images.
        .target(name: "Pictures", dependencies: ["CPNG", "DataIO"]),

        // MARK: Synthetic ultrasound dataset (pure Swift; written to disk through DataIO).
        .target(name: "Synthetic", dependencies: ["Random"]),

        // MARK: The command-line tool, one type per subcommand.
        .executableTarget(
            name: "unet",
            dependencies: [
                "Distributed", "DataIO", "Synthetic", "Kernels", "Model", "Training", "Checkpoint", "Submission", "Pictures",
                "CMPI", "COpenBLAS", "CTIFF", "CHDF5", "CPNG",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .testTarget(
            name: "UNetTrainerTests",
            dependencies: ["Distributed", "DataIO", "Random", "Synthetic", "Kernels", "Model", "Training", "Checkpoint", "Submission", "Pictures", "COpenBLAS", "CHDF5", "CTIFF", "CPNG"],
            exclude: ["Fixtures"]),
    ]
)
