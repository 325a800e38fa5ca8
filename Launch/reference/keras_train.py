#!/usr/bin/env python3
"""The Keras reference training of UNetTrainer's recipe (the tutorial's model.fit).

    /work/.venv-keras/bin/python Launch/reference/keras_train.py --data DATA [--epochs 20]
        [--batch-size 32] [--lr 1e-5] [--validation-split 0.2]
        [--rows 64 --cols 80 --filters 32 --depth 4 --upsample nearest] [--seed 1]
        [--out keras_unet.h5] [--log metrics.csv] [--threads N] [--init FILE] [--shuffle keras|ours]

Same recipe as `unet train` (so the two can be compared epoch for epoch):
  - data: DATA/imgs_train.npy, imgs_mask_train.npy, imgs_subject_train.npy from `unet prepare`,
    preprocessed by numpy_preprocessing.load_training (area resize to rows x cols; images
    normalised by the TRAINING split's mean and population std; masks scaled by 1/255, not
    thresholded);
  - validation: whole subjects held out (splitBySubject), passed as validation_data;
  - model: unet_keras.build_unet, Keras' default initialisation under set_determinism(seed);
  - loss -dice over the flattened batch (smooth 1), Adam (Keras defaults, --lr), batch --batch-size,
    shuffle=True (a new permutation every epoch; Keras' own, not ours) unless --shuffle ours;
  - Keras' default initialisation unless --init loads a checkpoint (ours from `--epochs 0`);
  - per epoch: loss (mean of the batch losses weighted by batch size, measured during the epoch
    as Keras reports it), dice (Keras' dice_coef metric: mean of the per-batch values, unweighted),
    val_loss / val_dice (same, on the validation batches in order), val_kaggle (after the epoch:
    mean per-image 2|A n B| / (|A| + |B|) on masks > 0.5, 1 when both empty), images/s (training
    images / training time of the epoch, validation excluded; epoch 1 includes graph tracing).
Writes --log (CSV, one row per epoch) and the final weights to --out in Keras' legacy .h5 layout
(model.load_weights(out) loads them), with a `keras_reference` group holding the configuration,
mean and std.
"""
import argparse
import csv
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import unet_keras  # noqa: E402  (sets the TF environment before TF is imported)
import numpy as np  # noqa: E402
import numpy_preprocessing as prep  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="the folder `unet prepare` wrote")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--validation-split", type=float, default=0.2)
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--upsample", choices=("nearest", "transpose"), default="nearest")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="keras_unet.h5")
    ap.add_argument("--log", default="metrics.csv")
    ap.add_argument("--init", metavar="FILE",
                    help="start from these weights (model.load_weights), e.g. the checkpoint of "
                         "`unet train --epochs 0 --seed S`: the same starting point as ours")
    ap.add_argument("--shuffle", choices=("keras", "ours"), default="keras",
                    help="keras: fit(shuffle=True), Keras' own order; ours: every epoch in "
                         "Trainer.permutation(seed, epoch) (seeded_generator.py), the order `unet train` uses")
    ap.add_argument("--threads", type=int, default=0,
                    help="TF intra- and inter-op threads (0: TensorFlow's default, all cores)")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0 or not (0 <= args.validation_split < 1):
        ap.error("need --epochs >= 1, --batch-size >= 1, --lr > 0, 0 <= --validation-split < 1")
    return args


def predict(model, x, batch_size):
    """Probabilities (n, rows, cols, 1), by direct calls in batches (no tf.data)."""
    if len(x) == 0:
        return np.zeros(x.shape, np.float32)
    return np.concatenate([np.asarray(model(x[b:b + batch_size], training=False))
                           for b in range(0, len(x), batch_size)])


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    if args.threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    unet_keras.set_determinism(args.seed)

    d = prep.load_training(args.data, args.rows, args.cols, args.validation_split)
    x_train, y_train, x_val, y_val = d["x_train"], d["y_train"], d["x_val"], d["y_val"]
    held = len(set(d["subjects"][d["val_idx"]].tolist()))
    batch_size = min(args.batch_size, len(x_train))
    config = dict(rows=args.rows, cols=args.cols, filters=args.filters, depth=args.depth, upsample=args.upsample)

    model = unet_keras.build_unet(args.rows, args.cols, args.filters, args.depth, args.upsample)
    unet_keras.compile_unet(model, args.lr)
    if args.init:
        model.load_weights(args.init)
        print(f"keras_train: initial weights from {args.init}", flush=True)
    print(f"keras_train: {len(x_train)} training images, {len(x_val)} validation images ({held} subjects held out); "
          f"{json.dumps(config, sort_keys=True)}; {model.count_params()} parameters; mean {float(d['mean']):.6g} "
          f"std {float(d['std']):.6g}; keras {keras.__version__}, tensorflow {tf.__version__}", flush=True)

    fields = ["epoch", "loss", "dice", "val_loss", "val_dice", "val_kaggle", "images_per_second", "seconds"]
    log_file = open(args.log, "w", newline="")
    writer = csv.DictWriter(log_file, fieldnames=fields)
    writer.writeheader()
    log_file.flush()

    class EpochReport(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()
            self.train_end = None

        def on_test_begin(self, logs=None):
            # Called when fit starts the validation pass: the training part of the epoch is over.
            if self.train_end is None:
                self.train_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs if logs is not None else {}
            train_end = self.train_end or time.perf_counter()
            kaggle = None
            if len(x_val):
                kaggle, _ = unet_keras.kaggle_score(predict(self.model, x_val, batch_size), y_val)
                logs["val_kaggle"] = kaggle
            seconds = time.perf_counter() - self.start
            row = dict(epoch=epoch + 1, loss=logs.get("loss"), dice=logs.get("dice_coef"),
                       val_loss=logs.get("val_loss"), val_dice=logs.get("val_dice_coef"), val_kaggle=kaggle,
                       images_per_second=len(x_train) / max(train_end - self.start, 1e-9), seconds=seconds)

            def f(v):
                return "-" if v is None else f"{float(v):.4f}"

            line = f"epoch {epoch + 1}/{args.epochs}  loss {f(row['loss'])}  dice {f(row['dice'])}"
            if len(x_val):
                line += f"  val_loss {f(row['val_loss'])}  val_dice {f(row['val_dice'])}  val_kaggle {f(kaggle)}"
            line += f"  {row['images_per_second']:.1f} img/s  {seconds:.1f} s"
            print(line, flush=True)
            writer.writerow({k: ("" if v is None else (v if k == "epoch" else f"{float(v):.8g}")) for k, v in row.items()})
            log_file.flush()

    validation = (x_val, y_val) if len(x_val) else None
    if args.shuffle == "keras":
        model.fit(x_train, y_train, batch_size=batch_size, epochs=args.epochs, shuffle=True,
                  validation_data=validation, callbacks=[EpochReport()], verbose=0)
    else:
        import seeded_generator
        report = EpochReport()
        for epoch in range(args.epochs):  # one fit per epoch, in our order; the optimizer state carries over
            order = np.asarray(seeded_generator.permutation(len(x_train), args.seed, epoch + 1))
            model.fit(x_train[order], y_train[order], batch_size=batch_size, initial_epoch=epoch,
                      epochs=epoch + 1, shuffle=False, validation_data=validation, callbacks=[report], verbose=0)
    log_file.close()
    unet_keras.save_legacy_weights(model, args.out, {"keras_reference": {
        "configuration": json.dumps(config, sort_keys=True),
        "mean": np.float32(d["mean"]), "std": np.float32(d["std"]),
        "seed": args.seed, "learning_rate": np.float32(args.lr), "epochs": args.epochs,
    }})
    print(f"keras_train: final weights {args.out} (legacy .h5), metrics {args.log}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
