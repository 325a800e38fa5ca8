#!/usr/bin/env python3
"""How two trainings from one start differ, layer by layer (Docs/ACCURACY.md).

    python Launch/reference/compare_weights.py INIT.h5 A.h5 B.h5

Each file is a legacy Keras weights file (ours, or keras_train.py's --out). For every tensor:
how far A moved from INIT (max |A - INIT|), max |A - B|, their ratio, the cosine between the two
updates (A - INIT, B - INIT) and the ratio of their norms. Needs h5py and NumPy.
"""
import sys

import h5py
import numpy as np


def load(path):
    out = {}
    with h5py.File(path, "r") as f:
        for layer in f.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else layer
            group = f[layer]
            for name in group.attrs["weight_names"]:
                name = name.decode() if isinstance(name, bytes) else name
                out[name] = np.array(group[name], dtype=np.float64)
    return out


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    init, a, b = load(argv[1]), load(argv[2]), load(argv[3])
    for name in a:
        da, db = a[name] - init[name], b[name] - init[name]
        moved = np.abs(da).max()
        diff = np.abs(a[name] - b[name]).max()
        cos = (da * db).sum() / (np.linalg.norm(da) * np.linalg.norm(db) + 1e-30)
        ratio = np.linalg.norm(db) / (np.linalg.norm(da) + 1e-30)
        print(f"{name:28s} moved {moved:.3e}  |a-b| {diff:.3e}  ratio {diff / (moved + 1e-30):.3e}  "
              f"cos {cos:.6f}  norm ratio {ratio:.4f}")


if __name__ == "__main__":
    main(sys.argv)
