#!/usr/bin/env python3
"""Writes the TIFF fixtures of the test suite with tools other than ours (tifffile and Pillow).

Run once from this folder: `python3 make_tiff_fixtures.py` (needs `pip install tifffile imagecodecs pillow
numpy`). The tests do not need Python: they recompute the same pixel formulas in Swift and compare
them with what our libtiff-based reader decodes.

Pixel formulas (W = 37 columns, H = 23 rows, odd so that tiles and strips are clipped):
  gray8(y, x)  = (7 * x + 13 * y) % 256
  gray16(y, x) = (7 * x + 13 * y) * 97 % 65536
  rgb8(y, x)   = ((7x + 13y) % 256, (3x + 5y + 50) % 256, (11x + 2y + 100) % 256)
"""
import numpy as np
import tifffile
from PIL import Image

W, H = 37, 23
y, x = np.mgrid[0:H, 0:W]
gray8 = ((7 * x + 13 * y) % 256).astype(np.uint8)
gray16 = ((7 * x + 13 * y) * 97 % 65536).astype(np.uint16)
rgb8 = np.stack([(7 * x + 13 * y) % 256, (3 * x + 5 * y + 50) % 256, (11 * x + 2 * y + 100) % 256], axis=-1).astype(np.uint8)

out = "tiff/"
# tifffile: the variety of layouts and codecs.
tifffile.imwrite(out + "gray8.tif", gray8, photometric="minisblack")
tifffile.imwrite(out + "gray8_lzw.tif", gray8, photometric="minisblack", compression="lzw")
tifffile.imwrite(out + "gray8_deflate.tif", gray8, photometric="minisblack", compression="zlib")
tifffile.imwrite(out + "gray8_packbits.tif", gray8, photometric="minisblack", compression="packbits")
tifffile.imwrite(out + "gray8_tiled.tif", gray8, photometric="minisblack", tile=(16, 16))
tifffile.imwrite(out + "gray8_strips.tif", gray8, photometric="minisblack", rowsperstrip=5)
tifffile.imwrite(out + "gray8_miniswhite.tif", 255 - gray8, photometric="miniswhite")
tifffile.imwrite(out + "gray16.tif", gray16, photometric="minisblack")
tifffile.imwrite(out + "gray16_tiled_deflate.tif", gray16, photometric="minisblack", tile=(16, 16), compression="zlib")
tifffile.imwrite(out + "rgb8.tif", rgb8, photometric="rgb")
tifffile.imwrite(out + "rgb8_planar_lzw.tif", np.moveaxis(rgb8, -1, 0), photometric="rgb", planarconfig="separate", compression="lzw")
# Pillow: a second writer, and the reference for RGB to luminance.
Image.fromarray(gray8).save(out + "gray8_pillow.tif")
Image.fromarray(rgb8).save(out + "rgb8_pillow_lzw.tif", compression="tiff_lzw")
luminance = np.asarray(Image.fromarray(rgb8).convert("L"))
r, g, b = (rgb8[..., i].astype(np.int64) for i in range(3))
expected = (19595 * r + 38470 * g + 7471 * b + 32768) >> 16
assert (luminance == expected).all(), "Pillow's convert('L') no longer matches the formula the tests use"
# A file that is not a TIFF and a truncated one, for the error tests, are made by the tests themselves.
print("wrote", out)
