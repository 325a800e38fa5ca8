#!/usr/bin/env python3
"""Writes the PNG fixtures of the test suite with Pillow, not with our code, and what Pillow
decodes them to (its convert("L"), as .npy beside them).

Run once from this folder: `python3 make_png_fixtures.py` (needs `pip install pillow numpy`).
The tests do not need Python: they read each PNG with `unet prepare`'s reader (libpng, then
Pillow's luminance weights) and compare with the .npy.

  gray8.png         8-bit grayscale, (7x + 13y) % 256, 37x23
  rgb8.png          RGB, the TIFF fixtures' rgb8 formula
  palette_mask.png  palette ("P") image of indices 0 and 1, index 1 a red (200, 30, 30): a
                    label mask as LabelMe and palette PNG tools write them
  gray_alpha.png    gray with an alpha channel, opaque
"""
import numpy as np
from PIL import Image

W, H = 37, 23
y, x = np.mgrid[0:H, 0:W]
gray8 = ((7 * x + 13 * y) % 256).astype(np.uint8)
rgb8 = np.stack([(7 * x + 13 * y) % 256, (3 * x + 5 * y + 50) % 256, (11 * x + 2 * y + 100) % 256], axis=-1).astype(np.uint8)
labels = (((x - 18) ** 2 + (y - 11) ** 2) < 60).astype(np.uint8)

out = "png/"
images = {
    "gray8.png": Image.fromarray(gray8),
    "rgb8.png": Image.fromarray(rgb8),
    "gray_alpha.png": Image.fromarray(np.stack([gray8, np.full_like(gray8, 255)], axis=-1), mode="LA"),
}
palette = Image.fromarray(labels, mode="P")
palette.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
images["palette_mask.png"] = palette
for name, image in images.items():
    image.save(out + name)
    np.save(out + name.replace(".png", ".npy"), np.asarray(Image.open(out + name).convert("L")))
