#!/usr/bin/env bash
# Rank 0's peak resident memory when `unet train` and `unet predict` read a data folder the size
# of Kaggle's: 5,635 training and 5,508 test images of 580x420 (the arrays `unet prepare` writes,
# made here directly with NumPy: random pixels, masks of 0 and 255, 47 subjects; the content does
# not change what is held in memory).
#   Launch/bench/kaggle-size-memory.sh [UNET_BINARY]      (default: .build/release/unet, built)
# Runs `unet train --epochs 0` (reads, resizes to 64x80 and normalises the training set, then
# writes the initial checkpoint: the reading's peak, no training) and `unet predict` with that
# checkpoint, each in one process, and prints each one's peak RSS (getrusage of the child).
# Needs python3 with NumPy and about 4 GB of disk in TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ $# -ge 1 ]; then unet=$1; else swift build -c release >/dev/null; unet=$(swift build -c release --show-bin-path)/unet; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/unet-kaggle-size.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 - "$work/data" <<'PY'
import os, sys, numpy as np
d = sys.argv[1]; os.makedirs(d)
rng = np.random.default_rng(3)
n, m, h, w = 5635, 5508, 420, 580
np.save(f"{d}/imgs_train.npy", rng.integers(0, 256, (n, h, w), dtype=np.uint8))
np.save(f"{d}/imgs_mask_train.npy", (rng.random((n, h, w), dtype=np.float32) < 0.02).astype(np.uint8) * 255)
np.save(f"{d}/imgs_subject_train.npy", (np.arange(n) * 47 // n + 1).astype(np.int32))
np.save(f"{d}/imgs_test.npy", rng.integers(0, 256, (m, h, w), dtype=np.uint8))
np.save(f"{d}/imgs_id_test.npy", np.arange(1, m + 1, dtype=np.int32))
PY
peak() {  # peak LABEL COMMAND...: runs it, prints its peak RSS
    python3 - "$@" <<'PY'
import resource, subprocess, sys
label, command = sys.argv[1], sys.argv[2:]
subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{label}: peak RSS {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024:.0f} MB")
PY
}
echo "data: $(du -sh "$work/data" | cut -f1) of .npy arrays (5635 + 5508 images, 420x580); $unet"
peak "unet train --epochs 0 (64x80)" "$unet" train --data "$work/data" --checkpoint "$work/unet.h5" --epochs 0 --quiet
peak "unet predict (64x80)" "$unet" predict --data "$work/data" --checkpoint "$work/unet.h5" --out "$work/masks.npy"
