#!/usr/bin/env bash
# The README's pictures: Docs/images/report.png (the page `unet report` writes, rendered by
# headless Chromium) and Docs/images/overlay.png (one picture of `unet evaluate --png`), from a
# small synthetic run made here: unet synth, prepare, train, report --data, evaluate --png.
#
#   Launch/screenshots.sh [UNET]      # UNET: the unet binary (default: swift build -c release)
#
# Installs Debian's chromium when it is missing (apt-get, as root or through sudo). The size of
# the run comes from TRAIN (images, default 600), SUBJECTS (20), EPOCHS (12), FILTERS (16),
# LR (3e-5), SEED (7); WORK=DIR keeps the run's files there (default: a temporary folder,
# removed). The tests do not need Chromium; nothing but this script does.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

unet=${1:-}
if [ -z "$unet" ]; then
    swift build -c release --product unet
    unet="$(swift build -c release --show-bin-path)/unet"
fi
unet=$(realpath "$unet")

if ! command -v chromium >/dev/null; then
    echo "== installing Debian's chromium"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends chromium fonts-dejavu-core
fi

if [ -n "${WORK:-}" ]; then
    work=$WORK
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
train=${TRAIN:-600} subjects=${SUBJECTS:-20} epochs=${EPOCHS:-12} filters=${FILTERS:-16} lr=${LR:-3e-5} seed=${SEED:-7}

echo "== a synthetic run in $work: $train images of $subjects subjects, $epochs epochs"
rm -rf "$work/raw" "$work/data" "$work/out"
"$unet" synth --out "$work/raw" --train "$train" --test 4 --subjects "$subjects" --seed "$seed"
"$unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null
mkdir -p "$work/out"
"$unet" train --data "$work/data" --checkpoint "$work/out/unet.h5" --epochs "$epochs" --batch-size 32 \
    --filters "$filters" --lr "$lr" | tee "$work/train.log"

echo "== unet report and unet evaluate --png"
"$unet" report --checkpoint "$work/out/unet.h5" --data "$work/data" --out "$work/report.html" --max-images 12
"$unet" evaluate --data "$work/data" --checkpoint "$work/out/unet.h5" --png "$work/validation"

echo "== rendering with headless Chromium"
mkdir -p Docs/images
# A profile of its own, so no running browser or earlier profile interferes.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/chromium" \
    --window-size=1200,2000 --screenshot="$repo/Docs/images/report.png" "file://$work/report.html" 2>/dev/null
# The overlay: the image with a nerve (a true outline) that the model found best, so the picture
# shows both outlines.
best=$(awk -F, 'NR > 1 && $7 > 0 { print $6, $3 }' "$work/validation/scores.csv" | sort -g | tail -1 | cut -d' ' -f2)
[ -n "$best" ] || best=$(awk -F, 'NR == 2 { print $3 }' "$work/validation/scores.csv")
cp "$work/validation/$best" Docs/images/overlay.png

ls -l Docs/images/report.png Docs/images/overlay.png
echo "== done: Docs/images/report.png, Docs/images/overlay.png ($best)"
