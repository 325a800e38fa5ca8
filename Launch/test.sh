#!/usr/bin/env bash
# Every test: installs missing dependencies, builds (debug), runs `swift test`, then the multi-rank
# tests under `mpirun -np 2`, then checks that NumPy loads our .npy files when NumPy is present.
# Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source Launch/mpi-env.sh

Launch/install-deps.sh

echo "== build"
swift build --build-tests
bin=$(swift build --show-bin-path)

echo "== swift test (one process; MPI as a 1-rank job)"
swift test --skip-build

echo "== multi-rank tests: mpirun -np 2"
mpirun "${MPIRUN_FLAGS[@]}" --oversubscribe -np 2 \
    "$bin/UNetTrainerPackageTests.xctest" --testing-library swift-testing --filter "CommunicatorTests"

echo "== data-parallel training, resume, replica check, sharded predict: unet under mpirun -np 2"
Launch/test-distributed.sh "$bin"

echo "== reliability: kill -9 of a rank, preemption (SIGUSR1/SIGTERM, mpirun, SLURM-style, launch script), stall watchdog"
Launch/test-reliability.sh "$bin"

echo "== two hosts simulated with network namespaces (TCP only): unet info, the MPI suite, 1 vs 2 hosts, Launch/cluster.sh"
Launch/multihost/run.sh -- "$bin/unet" info
Launch/multihost/run.sh -- "$bin/UNetTrainerPackageTests.xctest" --testing-library swift-testing --filter CommunicatorTests
Launch/multihost/train-equivalence.sh "$bin"
Launch/multihost/cluster-pipeline.sh "$bin"

echo "== mpirun -np 2 unet info"
mpirun "${MPIRUN_FLAGS[@]}" --oversubscribe -np 2 "$bin/unet" info

if python3 -c "import numpy" 2>/dev/null; then
    echo "== NumPy loads what unet prepare writes"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$bin/unet" synth --out "$work/raw" --train 6 --test 3 --subjects 2 --seed 3
    "$bin/unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null
    python3 - "$work/data" <<'PY'
import sys, numpy as np
d = sys.argv[1]
shapes = {n: np.load(f"{d}/{n}.npy").shape for n in ["imgs_train", "imgs_mask_train", "imgs_subject_train", "imgs_test", "imgs_id_test"]}
assert shapes["imgs_train"] == (6, 420, 580) == shapes["imgs_mask_train"], shapes
assert shapes["imgs_test"] == (3, 420, 580) and shapes["imgs_id_test"] == (3,), shapes
assert np.load(f"{d}/imgs_train.npy").dtype == np.uint8 and np.load(f"{d}/imgs_id_test.npy").dtype == np.int32
assert list(np.load(f"{d}/imgs_id_test.npy")) == [1, 2, 3]
assert set(np.unique(np.load(f"{d}/imgs_mask_train.npy"))) <= {0, 255}
print("numpy:", shapes)
PY
else
    echo "== (NumPy not installed: skipped the NumPy interoperability check)"
fi
echo "== all tests passed"
