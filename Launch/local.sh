#!/usr/bin/env bash
# The whole pipeline as one process on this machine (no mpirun: a 1-rank MPI job), every core to
# OpenBLAS:
#   Launch/local.sh [RAW_DIR]
# RAW_DIR is a folder in the Kaggle layout (train/, test/); without it a synthetic set is made.
# OPENBLAS_NUM_THREADS defaults to the number of physical cores (set it to override).
# Other settings (OUT, EPOCHS, BATCH, LR, UPSAMPLE, TRAIN/TEST/SUBJECTS/SEED, UNET_TRAIN_ARGS,
# UNET_BIN, SWIFT_BUILD_ARGS): see Launch/pipeline.sh. Example:
#   EPOCHS=2 OUT=/tmp/unet Launch/local.sh
set -euo pipefail
source "$(dirname "$0")/pipeline.sh"

export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$(unet_cores)}
echo "local: 1 process, OPENBLAS_NUM_THREADS=$OPENBLAS_NUM_THREADS" >&2
pipeline_binary
pipeline_run "${1:-}"
