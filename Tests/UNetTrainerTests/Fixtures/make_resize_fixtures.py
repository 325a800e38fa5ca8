#!/usr/bin/env python3
"""Reference resizes by Pillow for the resize tests (run from this folder; needs numpy, pillow).

Writes resize/source.npy (23x31 float32), resize/area_7x9.npy (exact area averaging to 7 rows x
9 cols, as OpenCV's INTER_AREA: computed independently by repeating every source pixel 7 (9)
times and averaging blocks of 23 (31); Pillow's BOX samples the box at pixel centres instead) and resize/bilinear_50x70.npy (Pillow BILINEAR enlarging a 7x9 image to
50x70), and resize/small.npy (the 7x9 source of the enlargement).
"""
import numpy as np
from PIL import Image

rng = np.random.default_rng(11)
source = (rng.random((23, 31)) * 255).astype(np.float32)
small = (rng.random((7, 9)) * 255).astype(np.float32)
np.save("resize/source.npy", source)
np.save("resize/small.npy", small)
# Pillow sizes are (width, height).
up = np.repeat(np.repeat(source.astype(np.float64), 7, axis=0), 9, axis=1)  # 161 x 279
area = up.reshape(7, 23, 9, 31).mean(axis=(1, 3))
np.save("resize/area_7x9.npy", area.astype(np.float32))
np.save("resize/bilinear_50x70.npy", np.asarray(Image.fromarray(small, mode="F").resize((70, 50), Image.BILINEAR), dtype=np.float32))
