#!/usr/bin/env bash
# A long fuzz campaign against the checkpoint reader (issue 6): CheckpointFuzzTests with many more
# cases than `swift test` runs, and a fresh seed unless UNET_FUZZ_SEED is set.
#
#   Launch/fuzz-checkpoint.sh [CASES] [PLAIN_CASES]
#
# CASES (default 100000) mutated checkpoints with the header, read in-process: each must be refused
# by the header check before HDF5 sees it. PLAIN_CASES (default CASES/10) mutated plain HDF5 files
# (no header: Keras' files, checkpoints from before the header), read in child processes: crashes
# and hangs of HDF5 are counted and listed (HDF5 1.10's known crashes as a known issue), and a copy
# of each such file is kept in UNET_FUZZ_DIR (default: a folder under /tmp, printed). Prints one
# summary line per test; exit status 0 when nothing but the known HDF5 issue was found.
# Reproduce a case: UNET_FUZZ_SEED=<seed> UNET_FUZZ_FIRST=<case> UNET_FUZZ_CASES=1 UNET_FUZZ_PLAIN_CASES=1.
set -euo pipefail
cd "$(dirname "$0")/.."

cases=${1:-100000}
plain=${2:-$((cases / 10))}
seed=${UNET_FUZZ_SEED:-$(date +%s)}
dir=${UNET_FUZZ_DIR:-$(mktemp -d /tmp/unet-fuzz-checkpoint.XXXXXX)}

swift build --build-tests
bin=$(swift build --show-bin-path)
echo "== checkpoint fuzz: $cases cases with the header, $plain without; seed $seed; files kept in $dir"
UNET_FUZZ_CASES=$cases UNET_FUZZ_PLAIN_CASES=$plain UNET_FUZZ_SEED=$seed UNET_FUZZ_DIR=$dir UNET_FUZZ_VERBOSE=${UNET_FUZZ_VERBOSE:-1} \
    "$bin/UNetTrainerPackageTests.xctest" --testing-library swift-testing --filter "CheckpointFuzzTests" \
    2>&1 | grep -vE '^.{0,12}(◇|↳)'
