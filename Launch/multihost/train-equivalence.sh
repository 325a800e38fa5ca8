#!/usr/bin/env bash
# Data-parallel training across two simulated hosts gives the one-process result:
#   Launch/multihost/train-equivalence.sh BIN_DIR        (BIN_DIR holds the unet binary)
# Makes a tiny synthetic set (24 training images of 3 subjects), trains one epoch (3 steps of 8
# images, no validation) as one local process, then the same with one rank on each of the two
# network-namespace hosts of Launch/multihost/run.sh (TCP between them; each rank takes 4 images
# of every batch and the gradients are summed by an allreduce), and compares the two checkpoints
# with `unet compare --state`: weights and Adam's moments within 1e-5, Adam step and epoch equal.
#
# Tolerance: both runs add the same per-image gradient terms, in another order (each rank sums
# its 4 images, then the allreduce adds the two partial sums), so the weights differ only by
# float32 rounding, about 1e-8 after 3 steps at lr 1e-3 (the figure is printed below); 1e-5 is
# far above that and far below what a wrong shard or a lost contribution does (those change the
# steps themselves, by about lr = 1e-3 per weight and step).
#
# Exit status 0 when equivalent; non-zero otherwise; 0 with "SKIP: ..." when network namespaces
# cannot be made here (see run.sh), non-zero then under CI=true (run.sh fails instead of skipping).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: Launch/multihost/train-equivalence.sh BIN_DIR}
unet=$(cd "$bin" && pwd)/unet
[ -x "$unet" ] || { echo "train-equivalence: no unet binary in $bin" >&2; exit 1; }
tolerance=1e-5

work=$(mktemp -d "${TMPDIR:-/tmp}/unet-equivalence.XXXXXX")
trap 'rm -rf "$work"' EXIT
probe=$("$here/run.sh" -- true 2>"$work/probe.log") || {
    tail -n 20 "$work/probe.log" >&2
    echo "train-equivalence: FAILED: the two-host harness fails (run Launch/multihost/run.sh -- true)" >&2
    exit 1
}
case $probe in
    SKIP:*) echo "$probe"; exit 0 ;;
esac
"$unet" synth --out "$work/raw" --train 24 --test 4 --subjects 3 --seed 5 >/dev/null 2>&1
"$unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null 2>&1
recipe=(--epochs 1 --batch-size 8 --lr 1e-3 --rows 32 --cols 32 --filters 4 --depth 2 --validation-split 0 --seed 3)

echo "== 1 rank, this machine"
OPENBLAS_NUM_THREADS=1 "$unet" train --data "$work/data" --checkpoint "$work/one.h5" "${recipe[@]}"
echo "== 2 ranks, hostA and hostB (network namespaces, TCP)"
"$here/run.sh" -- "$unet" train --data "$work/data" --checkpoint "$work/two.h5" "${recipe[@]}"
echo "== unet compare --tolerance $tolerance --state"
"$unet" compare "$work/one.h5" "$work/two.h5" --tolerance "$tolerance" --state
echo "train-equivalence: passed"
