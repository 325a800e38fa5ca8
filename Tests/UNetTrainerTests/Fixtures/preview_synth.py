#!/usr/bin/env python3
"""Development preview of the synthetic ultrasound generator (not used by the tests).

    mkdir -p /tmp/synth && SYNTH_PREVIEW_DIR=/tmp/synth \
        swift test --scratch-path .build-synth --filter Synthetic.writePreview
    python3 Tests/UNetTrainerTests/Fixtures/preview_synth.py /tmp/synth /tmp/synth/preview.png

Builds a contact sheet of the PGM files written by the preview test: training images with the
nerve mask outlined in red, then the test images. Needs Pillow.
"""
import glob
import os
import sys

from PIL import Image, ImageChops, ImageFilter


def main(src, dst, columns=3):
    train = sorted(p for p in glob.glob(os.path.join(src, "*.pgm"))
                   if not p.endswith("_mask.pgm") and not os.path.basename(p).startswith("test_"))
    test = sorted(glob.glob(os.path.join(src, "test_*.pgm")))
    tiles = []
    for path in train + test:
        image = Image.open(path).convert("RGB")
        mask_path = path[:-4] + "_mask.pgm"
        if os.path.exists(mask_path):
            mask = Image.open(mask_path)
            edge = ImageChops.subtract(mask, mask.filter(ImageFilter.MinFilter(3)))
            image.paste((255, 0, 0), mask=edge)
        tiles.append(image)
    if not tiles:
        sys.exit(f"no PGM files in {src}")
    w, h = tiles[0].size
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (w * columns, h * rows))
    for k, tile in enumerate(tiles):
        sheet.paste(tile, ((k % columns) * w, (k // columns) * h))
    sheet.save(dst)
    print(f"wrote {dst} ({len(tiles)} images)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/synth",
         sys.argv[2] if len(sys.argv) > 2 else "/tmp/synth/preview.png")
