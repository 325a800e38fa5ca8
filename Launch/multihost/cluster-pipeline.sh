#!/usr/bin/env bash
# Launch/cluster.sh end to end across the two network-namespace hosts of Launch/multihost/run.sh:
#   Launch/multihost/cluster-pipeline.sh BIN_DIR        (BIN_DIR holds the unet binary)
# Runs the whole pipeline (synth and prepare once on hostA, train and predict with one rank
# on each host, TCP only; submit once on hostA) through cluster.sh with the harness's hostfile,
# agent (MPIRUN_EXTRA) and network (UNET_IFACE), on a tiny synthetic set and model; checks that
# the checkpoints, the masks and the submission were written, and that the masks predicted by
# the two hosts are byte for byte those one local process predicts from the same checkpoint in
# the same forward passes.
# Why "in the same forward passes": a mask's float32 values depend, at the last bit, on how many
# images share its forward pass (the convolutions' GEMMs change shape with it: 1.2e-7 measured
# between one pass of 5 images and passes of 3 + 2). With 5 test images the two ranks forward 3 and 2 (shares
# differ by at most one, the first rank takes the extra one), exactly as one process does with
# --batch-size 3; a swapped or lost share would differ by far more than a bit.
# Exit status 0 when all holds, non-zero otherwise, 0 with "SKIP: ..." without namespaces;
# under CI=true run.sh fails instead of skipping, and so does this script (pipefail passes
# run.sh's status through tee).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:?usage: Launch/multihost/cluster-pipeline.sh BIN_DIR}
unet=$(cd "$bin" && pwd)/unet
[ -x "$unet" ] || { echo "cluster-pipeline: no unet binary in $bin" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/unet-cluster-pipeline.XXXXXX")
trap 'rm -rf "$work"' EXIT
export UNET_BIN=$unet OUT=$work/out TRAIN=12 TEST=5 SUBJECTS=3 SEED=4 EPOCHS=2 BATCH=4 LR=1e-3
export UNET_TRAIN_ARGS="--rows 32 --cols 32 --filters 4 --depth 2 --seed 3"
# pipefail: a failing run.sh (under CI=true also one without namespaces) fails this script.
"$here/run.sh" --launcher -- bash -c '"$0" "$MULTIHOST_HOSTFILE" 2' "$here/../cluster.sh" | tee "$work/log"
if grep -q '^SKIP:' "$work/log"; then exit 0; fi

for f in unet.h5 unet.last.h5 imgs_mask_test.npy submission.csv data/imgs_train.npy; do
    [ -s "$OUT/$f" ] || { echo "cluster-pipeline: FAILED: no $OUT/$f" >&2; exit 1; }
done
OPENBLAS_NUM_THREADS=1 "$unet" predict --data "$OUT/data" --checkpoint "$OUT/unet.h5" --out "$work/local.npy" --batch-size 3 2>/dev/null
cmp "$OUT/imgs_mask_test.npy" "$work/local.npy" \
    || { echo "cluster-pipeline: FAILED: the two hosts' masks differ from one process's" >&2; exit 1; }
echo "cluster-pipeline: passed (checkpoints and submission written; masks from 2 hosts == 1 process)"
