"""UNetTrainer's preprocessing, re-done in NumPy (no TensorFlow needed).

Mirrors, line for line in meaning:
  Sources/DataIO/Resize.swift        resize (area when shrinking, bilinear when enlarging, per axis)
  Sources/Training/Samples.swift     mean/std, normalisation, splitBySubject
  Sources/unet/DataFolder.swift      which arrays `unet train` / `unet predict` read

Arrays `unet prepare` writes into DATA:
  imgs_train.npy (N,H,W) uint8, imgs_mask_train.npy (N,H,W) uint8 0/255,
  imgs_subject_train.npy (N,) int32 (optional: without it every image is its own subject),
  imgs_test.npy (M,H,W) uint8, imgs_id_test.npy (M,) int32.

Resizing is written as per-axis weight matrices R (out x in), resized = R_rows @ img @ R_cols.T,
computed in float64 and rounded to float32 at the end. The Swift code sums in float32 with
float32 weights, so the two agree to float32 rounding (~1e-5 relative), not bit for bit.
"""
import os

import numpy as np

CHUNK = 64  # images resized at a time


def axis_weights(n, m):
    """The (m, n) float64 matrix resizing one axis from n to m samples.

    m < n: area averaging (OpenCV INTER_AREA): output i covers [i*s, (i+1)*s), s = n/m, each
           source pixel j weighted by overlap([j, j+1), [i*s, (i+1)*s)) / s.
    m > n: bilinear, half-pixel centres: x = clamp((i+0.5)*s - 0.5, 0, n-1), j = floor(x),
           f = x - j, weights (1-f, f) on (j, j+1) (just 1 on j when f == 0 or j == n-1).
    m == n: identity (the bilinear formula gives exactly that).
    """
    if n <= 0 or m <= 0:
        raise ValueError(f"bad sizes {n} -> {m}")
    r = np.zeros((m, n), dtype=np.float64)
    s = n / m
    if m < n:
        for i in range(m):
            lo, hi = i * s, (i + 1) * s
            start, end = int(np.floor(lo)), min(n, int(np.ceil(hi)))
            for j in range(start, end):
                overlap = min(hi, j + 1.0) - max(lo, float(j))
                r[i, j] = overlap / s
    else:
        for i in range(m):
            x = min(max((i + 0.5) * s - 0.5, 0.0), float(n - 1))
            j = min(int(np.floor(x)), n - 1)
            f = x - j
            if j + 1 < n and f > 0:
                r[i, j] = 1.0 - f
                r[i, j + 1] = f
            else:
                r[i, j] = 1.0
    return r


def resize_stack(stack, rows, cols, scale=1.0):
    """(N, H, W) array (any numeric dtype) -> (N, rows, cols) float32, times `scale`."""
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"expected (N, H, W), got shape {stack.shape}")
    n, h, w = stack.shape
    rr = axis_weights(h, rows)
    rc = axis_weights(w, cols)
    out = np.empty((n, rows, cols), np.float32)
    for b in range(0, n, CHUNK):  # in chunks: a float64 copy of 1000 420x580 images is 1.9 GB
        part = np.einsum("ih,nhw,jw->nij", rr, stack[b:b + CHUNK].astype(np.float64), rc, optimize=True)
        out[b:b + CHUNK] = (part * scale).astype(np.float32)
    return out


def _axis_taps(n, m):
    """(first, weights) of one axis as Resize.swift builds them: float32 weights, padded with
    zero weights to a common tap count (adding 0 * v leaves a float32 sum unchanged)."""
    r = axis_weights(n, m)
    first = np.zeros(m, np.int64)
    taps = []
    for i in range(m):
        nz = np.nonzero(r[i])[0]
        first[i] = nz[0]
        taps.append(r[i, nz[0]:nz[-1] + 1])
    width = max(len(t) for t in taps)
    weights = np.zeros((m, width), np.float32)
    for i, t in enumerate(taps):
        weights[i, :len(t)] = t.astype(np.float32)
    index = np.minimum(first[:, None] + np.arange(width)[None, :], n - 1)
    return index, weights


def resize_stack_like_swift(stack, rows, cols, scale=1.0):
    """The same resize computed as Resize.swift does (float32 weights, float32 sums in tap order,
    columns first, then rows, then `* scale`), for diagnosing differences of the float64 version.
    Agrees with the Swift output to the bit unless the compiler reassociates or fuses (FMA) the
    float32 sums."""
    stack = np.asarray(stack)
    _, h, w = stack.shape
    ci, cw = _axis_taps(w, cols)
    ri, rw = _axis_taps(h, rows)
    out = np.empty((stack.shape[0], rows, cols), np.float32)
    for b in range(0, stack.shape[0], CHUNK):
        v = stack[b:b + CHUNK].astype(np.float32)
        tmp = np.zeros(v.shape[:2] + (cols,), np.float32)
        for k in range(cw.shape[1]):
            tmp = tmp + cw[:, k] * v[:, :, ci[:, k]]
        part = np.zeros((v.shape[0], rows, cols), np.float32)
        for k in range(rw.shape[1]):
            part = part + rw[:, k][:, None] * tmp[:, ri[:, k], :]
        out[b:b + CHUNK] = part * np.float32(scale)
    return out


def mean_and_std(values):
    """np.mean and population np.std in float64, returned as float32 (std 1 when it is 0)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return np.float32(0), np.float32(1)
    mean = v.mean()
    std = np.sqrt(np.mean((v - mean) ** 2))
    return np.float32(mean), np.float32(std if std > 0 else 1.0)


def normalize(images, mean, std):
    """(x - mean) / std in float32."""
    return ((np.asarray(images, np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


def split_by_subject(subjects, fraction):
    """Whole subjects held out for validation, as Preprocessing.splitBySubject.

    Sorted unique subjects; if fraction > 0 and there are at least 2: hold out the last k
    (k = 1 .. nsubjects-1) whose image count is closest to fraction * N (the first k reaching the
    minimal |held - target| wins). Returns (train_indices, validation_indices), in data order."""
    subjects = np.asarray(subjects)
    all_idx = np.arange(len(subjects))
    if fraction <= 0:
        return all_idx, all_idx[:0]
    ordered = np.unique(subjects)  # sorted
    if len(ordered) < 2:
        return all_idx, all_idx[:0]
    counts = {s: int(c) for s, c in zip(*np.unique(subjects, return_counts=True))}
    target = fraction * len(subjects)
    held, best_k, best_err = 0, 1, np.inf
    for k in range(1, len(ordered)):
        held += counts[ordered[len(ordered) - k]]
        err = abs(held - target)
        if err < best_err:
            best_k, best_err = k, err
    held_out = set(ordered[len(ordered) - best_k:].tolist())
    is_val = np.array([s in held_out for s in subjects.tolist()], dtype=bool)
    return all_idx[~is_val], all_idx[is_val]


def load_training(data, rows, cols, validation_split=0.2, like_swift=False):
    """What `unet train` feeds the model (like_swift: resize with resize_stack_like_swift, which
    reproduces Swift's float32 values and so its mean and std exactly). Returns a dict with
    x_train, y_train, x_val, y_val: float32 (n, rows, cols, 1) NHWC (images normalised, masks in [0,1]);
    mean, std (float32, of the training split's resized images); train_idx, val_idx; subjects."""
    images = np.load(os.path.join(data, "imgs_train.npy"))
    masks = np.load(os.path.join(data, "imgs_mask_train.npy"))
    if images.shape != masks.shape:
        raise ValueError(f"imgs_mask_train.npy shape {masks.shape} differs from imgs_train.npy {images.shape}")
    subject_file = os.path.join(data, "imgs_subject_train.npy")
    if os.path.exists(subject_file):
        subjects = np.load(subject_file).astype(np.int64)
    else:
        subjects = np.arange(len(images))
    resize = resize_stack_like_swift if like_swift else resize_stack
    x = resize(images, rows, cols)
    y = resize(masks, rows, cols, scale=np.float32(1.0 / 255.0))
    train_idx, val_idx = split_by_subject(subjects, validation_split)
    mean, std = mean_and_std(x[train_idx])
    x = normalize(x, mean, std)
    return dict(
        x_train=x[train_idx][..., None], y_train=y[train_idx][..., None],
        x_val=x[val_idx][..., None], y_val=y[val_idx][..., None],
        mean=mean, std=std, train_idx=train_idx, val_idx=val_idx, subjects=subjects,
    )


def load_test(data, rows, cols, mean, std, like_swift=False):
    """What `unet predict` feeds the model: (M, rows, cols, 1) float32 normalised with the
    checkpoint's mean and std, and the ids."""
    images = np.load(os.path.join(data, "imgs_test.npy"))
    ids = np.load(os.path.join(data, "imgs_id_test.npy"))
    resize = resize_stack_like_swift if like_swift else resize_stack
    x = normalize(resize(images, rows, cols), mean, std)
    return x[..., None], ids
