#!/usr/bin/env python3
"""Keras loads an UNetTrainer checkpoint and predicts what `unet predict` predicted.

    /work/.venv-keras/bin/python Launch/reference/keras_loads_our_checkpoint.py CHECKPOINT DATA OURS_PRED.npy [--tolerance 1e-4]

1. Reads /unet_trainer@configuration (JSON: rows, cols, filters, depth, upsample) and
   /unet_trainer/training_state@mean, @std with h5py, and prints the file's tree (groups,
   datasets with shapes) as h5py lists it.
2. Builds the Keras U-Net of that configuration (unet_keras.build_unet) and calls
   model.load_weights(CHECKPOINT) -- Keras' legacy .h5 path.
3. Preprocesses DATA/imgs_test.npy in NumPy exactly as `unet predict` does
   (numpy_preprocessing.load_test: area resize, (x - mean) / std with the checkpoint's values).
4. model.predict, compared with OURS_PRED.npy (float32 (M, rows, cols), from
   `unet predict --data DATA --checkpoint CHECKPOINT --out OURS_PRED.npy`).

Prints the max abs difference; exits 0 when it is <= tolerance, 1 otherwise (and 2 on a
malformed input).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import unet_keras  # noqa: E402  (sets the TF environment before TF is imported)
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import numpy_preprocessing as prep  # noqa: E402


def print_tree(f, max_datasets_shown=None):
    """Groups and datasets (with shape, dtype), plus the few attributes that matter here."""
    lines = []
    counts = {"groups": 0, "datasets": 0}

    def visit(name, obj):
        indent = "  " * name.count("/")
        if isinstance(obj, h5py.Dataset):
            counts["datasets"] += 1
            lines.append(f"{indent}{name.split('/')[-1]}  dataset {obj.shape} {obj.dtype}")
        else:
            counts["groups"] += 1
            keys = sorted(obj.attrs.keys())
            lines.append(f"{indent}{name.split('/')[-1]}/" + (f"  attrs: {', '.join(keys)}" if keys else ""))

    f.visititems(visit)
    print(f"h5py tree of {f.filename} (root attrs: {', '.join(sorted(f.attrs.keys()))})")
    for line in lines:
        print("  " + line)
    print(f"  -- {counts['groups']} groups, {counts['datasets']} datasets")


def as_text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return as_text(value.reshape(-1)[0])
    return str(value)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("ours")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    with h5py.File(args.checkpoint, "r") as f:
        print_tree(f)
        if "unet_trainer" not in f:
            print(f"error: {args.checkpoint}: no /unet_trainer group (not written by unet train)")
            return 2
        config = json.loads(as_text(f["unet_trainer"].attrs["configuration"]))
        state = f["unet_trainer/training_state"]
        mean = np.float32(state.attrs["mean"])
        std = np.float32(state.attrs["std"])
    print(f"configuration: {json.dumps(config, sort_keys=True)}")
    print(f"training_state: mean {mean!r} std {std!r}")

    import keras
    import tensorflow as tf

    rows, cols = int(config["rows"]), int(config["cols"])
    model = unet_keras.build_unet(rows, cols, int(config["filters"]), int(config["depth"]), config["upsample"])
    model.load_weights(args.checkpoint)
    print(f"keras {keras.__version__} (tensorflow {tf.__version__}): model.load_weights({args.checkpoint}) OK, "
          f"{model.count_params()} parameters, {len([l for l in model.layers if l.weights])} weighted layers")

    x, ids = prep.load_test(args.data, rows, cols, mean, std)
    x_swift, _ = prep.load_test(args.data, rows, cols, mean, std, like_swift=True)
    print(f"preprocessing: float64 resize vs Swift's float32 order, normalised inputs differ by at most "
          f"{np.abs(x - x_swift).max():.2e} (the float64 inputs are used)")
    # Direct calls in batches (model.predict goes through tf.data, which only adds log noise).
    keras_pred = np.concatenate([np.asarray(model(x[b:b + args.batch_size], training=False))
                                 for b in range(0, len(x), args.batch_size)])[..., 0]
    ours = np.load(args.ours)
    if ours.shape != keras_pred.shape:
        print(f"error: {args.ours} has shape {ours.shape}, Keras predicted {keras_pred.shape}")
        return 2
    if ours.dtype != np.float32:
        print(f"note: {args.ours} is {ours.dtype}, expected float32")

    diff = np.abs(ours.astype(np.float64) - keras_pred.astype(np.float64))
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    flips = int(np.sum((ours > 0.5) != (keras_pred > 0.5)))
    print(f"test images: {len(x)} ({rows}x{cols}), prediction range ours [{ours.min():.4f}, {ours.max():.4f}] "
          f"keras [{keras_pred.min():.4f}, {keras_pred.max():.4f}]")
    print(f"max abs difference: {diff.max():.3e} (at image {worst[0]}, row {worst[1]}, col {worst[2]}); "
          f"mean abs difference {diff.mean():.3e}; pixels on different sides of 0.5: {flips}")
    if diff.max() > args.tolerance:
        print(f"FAIL: max abs difference {diff.max():.3e} > tolerance {args.tolerance:g}")
        return 1
    print(f"PASS: max abs difference {diff.max():.3e} <= tolerance {args.tolerance:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
