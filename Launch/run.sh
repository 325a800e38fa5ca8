#!/usr/bin/env bash
# The main job in one command:
#   Launch/run.sh [RAW_DIR]
# Installs missing dependencies, builds in release, generates a synthetic data set when no raw
# folder (the Kaggle layout: train/ and test/) is given, then runs every pipeline stage.
# Outputs go to $OUT (default: ./out). Synthetic set size: $TRAIN, $TEST, $SUBJECTS, $SEED.
# Training: $EPOCHS (default 20, the tutorial's), $BATCH (32), $LR (1e-5), $UPSAMPLE (nearest).
set -euo pipefail
cd "$(dirname "$0")/.."

Launch/install-deps.sh
swift build -c release
unet="$(swift build -c release --show-bin-path)/unet"

out=${OUT:-out}
mkdir -p "$out"
raw=${1:-}
if [ -z "$raw" ]; then
    raw="$out/raw-synthetic"
    if [ -d "$raw" ]; then
        echo "run: reusing the synthetic data set in $raw (delete it to make a new one)"
    else
        "$unet" synth --out "$raw" --train "${TRAIN:-120}" --test "${TEST:-30}" \
            --subjects "${SUBJECTS:-6}" --seed "${SEED:-42}"
    fi
fi

"$unet" prepare --raw "$raw" --out "$out/data" >/dev/null
"$unet" train --data "$out/data" --checkpoint "$out/unet.h5" --epochs "${EPOCHS:-20}" \
    --batch-size "${BATCH:-32}" --lr "${LR:-1e-5}" --upsample "${UPSAMPLE:-nearest}"
"$unet" predict --data "$out/data" --checkpoint "$out/unet.h5" --out "$out/imgs_mask_test.npy"

echo
echo "run: done. Outputs:"
echo "  raw data:     $raw (train/, test/)"
echo "  arrays:       $out/data/imgs_train.npy, imgs_mask_train.npy, imgs_subject_train.npy, imgs_test.npy, imgs_id_test.npy"
echo "  checkpoints:  $out/unet.h5 (best by validation loss), $out/unet.last.h5 (latest)"
echo "  predictions:  $out/imgs_mask_test.npy"
