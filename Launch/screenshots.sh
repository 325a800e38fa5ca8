#!/usr/bin/env bash
# The README's pictures: Docs/images/report.png (the page `unet report` writes, rendered by
# headless Chromium) and Docs/images/overlay.png (one picture of `unet evaluate --png`), from a
# small synthetic run made here: unet synth, prepare, train, report --data, evaluate --png.
#
#   Launch/screenshots.sh [UNET]      # UNET: the unet binary (default: swift build -c release)
#
# Installs Debian's chromium when it is missing (apt-get, as root or through sudo). The size of
# the run comes from TRAIN (images, default 300), SUBJECTS (10), EPOCHS (10), FILTERS (8),
# LR (1e-4), SEED (7); WORK=DIR keeps the run's files there (default: a temporary folder,
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
    mkdir -p "$WORK"
    work=$(realpath "$WORK")
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi
train=${TRAIN:-300} subjects=${SUBJECTS:-10} epochs=${EPOCHS:-10} filters=${FILTERS:-8} lr=${LR:-1e-4} seed=${SEED:-7}

echo "== a synthetic run in $work: $train images of $subjects subjects, $epochs epochs"
# In the run's folder, with the README's quick start commands, so the page names unet.h5 rather
# than a temporary path.
cd "$work"
rm -rf raw data unet.h5 unet.last.h5 unet.csv report.html validation
"$unet" synth --out raw --train "$train" --test 4 --subjects "$subjects" --seed "$seed"
"$unet" prepare --raw raw --out data >/dev/null
"$unet" train --data data --checkpoint unet.h5 --epochs "$epochs" --filters "$filters" --lr "$lr" | tee train.log

echo "== unet report and unet evaluate --png"
"$unet" report --checkpoint unet.h5 --data data --out report.html --max-images 6
"$unet" evaluate --data data --checkpoint unet.h5 --png validation
cd "$repo"

echo "== rendering with headless Chromium"
mkdir -p Docs/images
# A profile of its own, so no running browser or earlier profile interferes.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/chromium" \
    --window-size=1200,2000 --screenshot="$repo/Docs/images/report.png" "file://$work/report.html" 2>/dev/null
# The overlay: of the images with a nerve (a true outline), the one the model found best, so the
# picture shows both outlines.
best=$(awk -F, 'NR > 1 && $7 > 0 { print $6, $3 }' "$work/validation/scores.csv" | sort -g | tail -1 | cut -d' ' -f2)
[ -n "$best" ] || best=$(awk -F, 'NR == 2 { print $3 }' "$work/validation/scores.csv")
cp "$work/validation/$best" Docs/images/overlay.png

ls -l Docs/images/report.png Docs/images/overlay.png
echo "== done: Docs/images/report.png, Docs/images/overlay.png ($best)"
