#!/usr/bin/env bash
# Every test: installs missing dependencies, builds (debug), runs `swift test`, then the multi-rank
# tests under `mpirun -np 2`, then checks that NumPy loads our .npy files when NumPy is present
# and that pandas (or Python's csv module) reads the metrics log when python3 is present.
# Exit status non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source Launch/mpi-env.sh

Launch/install-deps.sh

echo "== build"
swift build --build-tests
bin=$(swift build --show-bin-path)

echo "== swift test (one process; MPI as a 1-rank job)"
# OpenBLAS single-threaded: the first test to touch MPI initialises it as a singleton, which
# forks, and OpenBLAS's fork handler can deadlock joining its busy threads while other suites
# run GEMMs (seen under AddressSanitizer; Docs/RELIABILITY.md). Our kernels have their own threads.
OPENBLAS_NUM_THREADS=1 swift test --skip-build

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

if command -v python3 >/dev/null; then
    # The metrics log beside the checkpoint, as pandas.read_csv reads it (Python's csv module
    # when pandas is not installed): with validation, and without (empty cells: NaN).
    logs=$(mktemp -d)
    trap 'rm -rf "${work:-}" "$logs"' EXIT
    "$bin/unet" synth --out "$logs/raw" --train 8 --test 1 --subjects 3 --seed 3 >/dev/null
    "$bin/unet" prepare --raw "$logs/raw" --out "$logs/data" >/dev/null
    tiny=(--data "$logs/data" --epochs 2 --batch-size 4 --rows 16 --cols 16 --filters 2 --depth 2 --lr 1e-3 --quiet)
    "$bin/unet" train "${tiny[@]}" --checkpoint "$logs/val.h5" 2>/dev/null
    "$bin/unet" train "${tiny[@]}" --checkpoint "$logs/noval.h5" --validation-split 0 2>/dev/null
    if python3 -c "import pandas" 2>/dev/null; then reader=pandas; else reader=csv; fi
    echo "== the metrics log (unet.csv) reads with $reader"
    python3 - "$logs" "$reader" <<'PY'
import csv, math, sys
d, reader = sys.argv[1], sys.argv[2]
columns = ["epoch", "loss", "dice", "val_loss", "val_dice", "val_kaggle_score", "lr", "images_per_s", "seconds"]
for name, validation in [("val", True), ("noval", False)]:
    path = f"{d}/{name}.csv"
    if reader == "pandas":
        import pandas as pd
        frame = pd.read_csv(path)
        assert list(frame.columns) == columns, frame.columns
        assert list(frame["epoch"]) == [1, 2] and str(frame["epoch"].dtype) == "int64", frame
        assert all(str(frame[c].dtype) == "float64" for c in columns[1:]), frame.dtypes
        assert frame[["val_loss", "val_dice", "val_kaggle_score"]].notna().all().all() == validation, frame
        assert (frame["dice"] == -frame["loss"]).all() and (frame["lr"] == 1e-3).all(), frame
        print(f"pandas: {name}.csv {frame.shape}, loss {list(frame['loss'])}")
    else:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and list(rows[0].keys()) == columns, rows
        assert [int(r["epoch"]) for r in rows] == [1, 2], rows
        for r in rows:
            for c in columns[1:]:
                if c.startswith("val_") and not validation:
                    assert r[c] == "", r
                else:
                    assert math.isfinite(float(r[c])), r
            assert float(r["dice"]) == -float(r["loss"]) and float(r["lr"]) == 1e-3, r
        print(f"csv: {name}.csv {len(rows)} rows, loss {[float(r['loss']) for r in rows]}")
PY
else
    echo "== (python3 not installed: skipped the metrics log check)"
fi
echo "== all tests passed"
