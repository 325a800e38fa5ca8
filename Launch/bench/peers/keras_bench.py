#!/usr/bin/env python3
"""Keras 3 / TensorFlow-CPU peer of `unet bench`: the tutorial's U-Net from
Launch/reference/unet_keras.py (build_unet and the -Dice loss), trained or run on random data,
timed the same way. One TensorFlow configuration per process:

    keras_bench.py --config default|onednn|xla [--mode train|infer] [--rows 64 --cols 80]
                   [--batch-size 32 --filters 32 --depth 4 --upsample nearest|transpose]
                   [--threads 2] [--steps 5 --warmup 1] [--params-only]

Configurations (TF reads TF_ENABLE_ONEDNN_OPTS once, when it is loaded, hence one per process):
  default  TensorFlow as installed: TF_ENABLE_ONEDNN_OPTS removed from the environment, so TF
           decides (it leaves oneDNN off on CPUs without AVX-512 VNNI/BF16/AMX, e.g. AMD Zen 3);
  onednn   TF_ENABLE_ONEDNN_OPTS=1;
  xla      as default, and the model compiled with jit_compile=True (XLA).
Threads: tf.config.threading intra-op and inter-op parallelism both set to --threads (as
Launch/reference/keras_train.py does). TF_DETERMINISTIC_OPS is 0 unless set (the reference module
would turn it on; a benchmark wants the fastest kernels).

Training: model.compile(Adam(1e-5), -Dice, jit_compile=False|True), then model.train_on_batch
(one compiled tf.function step: forward, loss, gradients, Adam; returns the loss, so each step
ends synchronised). Inference: model.predict_on_batch (the compiled predict function, under XLA
for the xla configuration). Data, as `unet bench`: images N(0, 1), masks Bernoulli(0.05), one
batch reused every step. Prints one JSON line: images_per_s, peak_rss_mb (getrusage ru_maxrss /
1024), mode, layout ("channels_last", Keras' NHWC), config, onednn, threads, params, versions.
"""
import argparse
import json
import os
import sys

from measure import measure

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "..", "..", "reference")


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", choices=["default", "onednn", "xla"], default="default")
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--upsample", choices=["nearest", "transpose"], default="nearest")
    ap.add_argument("--threads", type=int, default=2, help="TF intra- and inter-op threads")
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (the first one traces/compiles)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--params-only", action="store_true", help="print the parameter count and exit")
    return ap.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    # The environment must be settled before TensorFlow is loaded (unet_keras imports it).
    if args.config == "onednn":
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "1"
    else:
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "0")
    os.environ["KERAS_BACKEND"] = "tensorflow"
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf  # loaded here, with the environment above
    from tensorflow.python.util import _pywrap_util_port
    sys.path.insert(0, REFERENCE)
    import unet_keras  # after TF: its setdefault()s of TF_* no longer matter
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)

    model = unet_keras.build_unet(args.rows, args.cols, args.filters, args.depth, args.upsample)
    info = {"framework": "keras", "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "config": args.config, "onednn": bool(_pywrap_util_port.IsMklEnabled()),
            "xla": args.config == "xla", "mode": args.mode, "layout": "channels_last",
            "threads": args.threads, "rows": args.rows, "cols": args.cols, "batch_size": args.batch_size,
            "filters": args.filters, "depth": args.depth, "upsample": args.upsample,
            "params": int(model.count_params())}
    if args.params_only:
        print(json.dumps(info))
        return

    model.compile(optimizer=unet_keras.make_optimizer(1e-5), loss=unet_keras.dice_coef_loss,
                  jit_compile=args.config == "xla")
    rng = np.random.default_rng(args.seed)
    shape = (args.batch_size, args.rows, args.cols, 1)
    images = tf.constant(rng.standard_normal(shape, dtype=np.float32))
    masks = tf.constant((rng.random(shape) < 0.05).astype(np.float32))

    if args.mode == "train":
        def step():
            return model.train_on_batch(images, masks)
    else:
        def step():
            return model.predict_on_batch(images)

    measure(step, args, info, f"keras {args.config} {args.mode} {args.rows}x{args.cols} batch {args.batch_size}, {args.threads} threads")


if __name__ == "__main__":
    main()
