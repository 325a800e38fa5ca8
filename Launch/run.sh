#!/usr/bin/env bash
# The main job in one command:
#   Launch/run.sh [RAW_DIR]
# Installs missing dependencies, builds in release, and runs `unet run`: a synthetic data set when
# no raw folder (the Kaggle layout: train/ and test/) is given, then prepare, train, predict and
# submit. One process; Launch/mpi-local.sh, Launch/cluster.sh and Launch/slurm.sbatch run the same
# job on several ranks.
# Outputs go to $OUT (default: ./out). Synthetic set size: $TRAIN, $TEST, $SUBJECTS, $SEED.
# Training: $EPOCHS (default 20, the tutorial's), $BATCH (32), $LR (1e-5), $UPSAMPLE (nearest);
# RESUME=1 continues from $OUT/unet.last.h5.
set -euo pipefail
cd "$(dirname "$0")/.."

Launch/install-deps.sh
swift build -c release
unet="$(swift build -c release --show-bin-path)/unet"

args=(--out "${OUT:-out}" --synth-train "${TRAIN:-120}" --synth-test "${TEST:-30}"
      --synth-subjects "${SUBJECTS:-6}" --synth-seed "${SEED:-42}"
      --epochs "${EPOCHS:-20}" --batch-size "${BATCH:-32}" --lr "${LR:-1e-5}" --upsample "${UPSAMPLE:-nearest}")
if [ -n "${1:-}" ]; then args+=(--raw "$1"); fi
if [ "${RESUME:-0}" = 1 ]; then args+=(--resume); fi
"$unet" run "${args[@]}"
