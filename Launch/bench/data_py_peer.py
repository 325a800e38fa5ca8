#!/usr/bin/env python3
"""The peer for `unet prepare`: the original Keras tutorial's data.py, in its spirit (one process,
read every TIFF, stack, np.save), with Pillow instead of the long-deprecated skimage.io plugin.

Usage: data_py_peer.py RAW OUT
"""
import os
import sys

import numpy as np
from PIL import Image

raw, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)

train = sorted(
    (tuple(int(p) for p in f[:-4].split("_")), f)
    for f in os.listdir(os.path.join(raw, "train")) if f.endswith(".tif") and not f.endswith("_mask.tif")
)
imgs = np.stack([np.asarray(Image.open(os.path.join(raw, "train", f))) for _, f in train])
masks = np.stack([np.asarray(Image.open(os.path.join(raw, "train", f[:-4] + "_mask.tif"))) for _, f in train])
np.save(os.path.join(out, "imgs_train.npy"), imgs)
np.save(os.path.join(out, "imgs_mask_train.npy"), masks)
np.save(os.path.join(out, "imgs_subject_train.npy"), np.array([k[0] for k, _ in train], dtype=np.int32))

test = sorted((int(f[:-4]), f) for f in os.listdir(os.path.join(raw, "test")) if f.endswith(".tif"))
np.save(os.path.join(out, "imgs_test.npy"), np.stack([np.asarray(Image.open(os.path.join(raw, "test", f))) for _, f in test]))
np.save(os.path.join(out, "imgs_id_test.npy"), np.array([k for k, _ in test], dtype=np.int32))
