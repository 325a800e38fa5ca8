"""Keras 3 reference of UNetTrainer's U-Net (the Kaggle "Ultrasound Nerve Segmentation" tutorial net).

Shared by the Python reference scripts (golden fixtures in Tests/UNetTrainerTests/Fixtures/keras/,
a Keras training reference, a checkpoint-loading check). The Swift package never imports this:
it needs TensorFlow. Set up an environment with
    python3 -m venv /work/.venv-keras
    /work/.venv-keras/bin/pip install -r Tests/UNetTrainerTests/Fixtures/keras/requirements.txt

Import this module BEFORE TensorFlow or Keras: on import it sets (unless already set)
KERAS_BACKEND=tensorflow, hides GPUs (CUDA_VISIBLE_DEVICES=-1, TF_CPU_ONLY=1), turns oneDNN off
(TF_ENABLE_ONEDNN_OPTS=0, plain Eigen kernels) and asks for deterministic ops
(TF_DETERMINISTIC_OPS=1); `set_determinism(seed)` then seeds Python, NumPy, TF and Keras.

Architecture (channels_last, input (rows, cols, 1)), layers created in this order so that Keras'
automatic names are conv2d, conv2d_1, ..., max_pooling2d, ..., up_sampling2d / conv2d_transpose,
concatenate, ... (call `keras.backend.clear_session()` first; `build_unet` does it):
  encoder i = 0..depth-1: Conv2D(f*2**i, 3x3, relu, same) x2 -> skip_i; MaxPooling2D(2x2)
  bottom:                 Conv2D(f*2**depth, 3x3, relu, same) x2
  decoder i = depth-1..0: up = UpSampling2D(2x2)                                 ("nearest")
                            or Conv2DTranspose(f*2**i, 2x2, strides 2, same)      ("transpose")
                          concatenate([up, skip_i], axis=3)
                          Conv2D(f*2**i, 3x3, relu, same) x2
  output:                 Conv2D(1, 1x1, sigmoid)
"""
import os

for _key, _value in (
    ("KERAS_BACKEND", "tensorflow"),
    ("CUDA_VISIBLE_DEVICES", "-1"),
    ("TF_CPU_ONLY", "1"),
    ("TF_ENABLE_ONEDNN_OPTS", "0"),
    ("TF_DETERMINISTIC_OPS", "1"),
    ("TF_CPP_MIN_LOG_LEVEL", "2"),
    ("PYTHONHASHSEED", "0"),
):
    os.environ.setdefault(_key, _value)

import numpy as np  # noqa: E402
import keras  # noqa: E402
from keras import layers, ops  # noqa: E402

SMOOTH = 1.0


def set_determinism(seed):
    """Seeds Python, NumPy, TensorFlow and Keras, and turns on TF op determinism."""
    keras.utils.set_random_seed(seed)
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - non-TF backends
        pass


def build_unet(rows, cols, filters=32, depth=4, upsample="nearest"):
    """Builds the tutorial U-Net. Clears the Keras session first so layer names start at `conv2d`.

    Args:
        rows, cols: input height and width (divisible by 2**depth).
        filters: channels of the first level; level i has filters * 2**i.
        depth: number of poolings.
        upsample: "nearest" (UpSampling2D, the original tutorial) or "transpose"
            (Conv2DTranspose(filters*2**i, (2,2), strides=(2,2), padding="same"), linear, with bias).
    Returns an uncompiled keras.Model named "unet".
    """
    if upsample not in ("nearest", "transpose"):
        raise ValueError(f"upsample must be 'nearest' or 'transpose', got {upsample!r}")
    if rows % (2**depth) or cols % (2**depth):
        raise ValueError(f"{rows}x{cols} is not divisible by 2**depth = {2**depth}")
    keras.backend.clear_session()

    inputs = keras.Input((rows, cols, 1))
    x = inputs
    skips = []
    for i in range(depth):
        n = filters * 2**i
        x = layers.Conv2D(n, (3, 3), activation="relu", padding="same")(x)
        x = layers.Conv2D(n, (3, 3), activation="relu", padding="same")(x)
        skips.append(x)
        x = layers.MaxPooling2D(pool_size=(2, 2))(x)

    n = filters * 2**depth
    x = layers.Conv2D(n, (3, 3), activation="relu", padding="same")(x)
    x = layers.Conv2D(n, (3, 3), activation="relu", padding="same")(x)

    for i in reversed(range(depth)):
        n = filters * 2**i
        if upsample == "nearest":
            up = layers.UpSampling2D(size=(2, 2))(x)
        else:
            up = layers.Conv2DTranspose(n, (2, 2), strides=(2, 2), padding="same")(x)
        x = layers.concatenate([up, skips[i]], axis=3)
        x = layers.Conv2D(n, (3, 3), activation="relu", padding="same")(x)
        x = layers.Conv2D(n, (3, 3), activation="relu", padding="same")(x)

    outputs = layers.Conv2D(1, (1, 1), activation="sigmoid")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="unet")


def dice_coef(y_true, y_pred, smooth=SMOOTH):
    """The tutorial's Dice coefficient over the whole flattened batch (smooth = 1)."""
    y_true_f = ops.reshape(y_true, (-1,))
    y_pred_f = ops.reshape(y_pred, (-1,))
    intersection = ops.sum(y_true_f * y_pred_f)
    return (2.0 * intersection + smooth) / (ops.sum(y_true_f) + ops.sum(y_pred_f) + smooth)


def dice_coef_loss(y_true, y_pred):
    """The tutorial's loss: -dice_coef."""
    return -dice_coef(y_true, y_pred)


def make_optimizer(learning_rate=1e-5):
    """Adam with Keras defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7). The tutorial used 1e-5."""
    return keras.optimizers.Adam(learning_rate=learning_rate)


def kaggle_score(y_pred, y_true, threshold=0.5):
    """Competition metric in NumPy: per-image 2|A n B| / (|A| + |B|) on masks y_pred > t and
    y_true > t (1 when both are empty), averaged over images. Arrays are (N, ...)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true)
    a = (y_pred > threshold).reshape(len(y_pred), -1)
    b = (y_true > threshold).reshape(len(y_true), -1)
    scores = []
    for ai, bi in zip(a, b):
        total = int(ai.sum()) + int(bi.sum())
        scores.append(1.0 if total == 0 else 2.0 * int(np.logical_and(ai, bi).sum()) / total)
    return float(np.mean(scores)), scores


def compile_unet(model, learning_rate=1e-5):
    """The tutorial's compile: Adam(learning_rate), loss -dice, metric dice_coef."""
    model.compile(optimizer=make_optimizer(learning_rate), loss=dice_coef_loss, metrics=[dice_coef])
    return model


def save_legacy_weights(model, path, group_attrs=None):
    """Writes `model`'s weights in Keras' legacy .h5 layout (what Keras 2's save_weights("x.h5")
    wrote and what `model.load_weights("x.h5")` and UNetTrainer read), through Keras 3's surviving
    legacy writer. `group_attrs`, if given ({group: {name: value}}), adds groups with attributes
    beside the layers (ignored by Keras' loader, which follows `layer_names` only)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
        for group, attrs in (group_attrs or {}).items():
            g = f.create_group(group)
            for name, value in attrs.items():
                g.attrs[name] = value
