#!/usr/bin/env bash
# The multi-rank acceptance of data-parallel training, as a user runs it (called by Launch/test.sh):
#   Launch/test-distributed.sh BIN_DIR
# 1. exact resume with 2 ranks: 2 epochs straight == 1 epoch + --resume 1 epoch, bit for bit
#    (weights and Adam state);
# 2. 2 ranks vs 1 rank on the same data and seed, even and uneven splits and a partial last batch:
#    weights within 1e-5 (floating-point summation order only);
# 3. resuming with another rank count (1 rank, then 2 ranks) continues within the same tolerance;
# 4. a replica whose weights drift (test hook UNET_TEST_CORRUPT_RANK) aborts the job with a
#    message naming that rank, mpirun exits non-zero, and nothing hangs (timeout);
# 5. `unet predict` sharded over 2 ranks writes the 1-rank masks, `unet evaluate` prints the 1-rank figures;
#    with --png, predict writes the 1-rank pictures byte for byte, evaluate the same pictures and scores;
#    `unet report --data` shows the 1-rank pictures in the same order;
# 6. an error on one rank (rank 0 cannot read the data) ends the whole job, prefixed by the rank;
# 7. more ranks than images in a batch is refused before any work (issue 6, point 7);
# 8. the metrics log of 1 + 1 resumed epochs has the straight run's figures, and --timeline
#    writes a Chrome trace with every step of both ranks;
# 9. ranks with different OpenBLAS kernels (an MPMD job giving rank 1 OPENBLAS_CORETYPE=Zen,
#    rank 0 Haswell): train, predict and evaluate each warn once, on rank 0, naming both; ranks
#    of one kind do not warn. The only place a test sets OPENBLAS_CORETYPE, for its own job.
set -euo pipefail
cd "$(dirname "$0")/.."
source Launch/mpi-env.sh
bin=${1:?usage: test-distributed.sh BIN_DIR}
unet="$bin/unet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpi() { timeout 300 mpirun "${MPIRUN_FLAGS[@]}" --oversubscribe -np "$1" -x OPENBLAS_NUM_THREADS=1 "${@:2}"; }

"$unet" synth --out "$work/raw" --train 23 --test 7 --subjects 3 --seed 5 >/dev/null
"$unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null
# 16 training images (subjects 1-2), 7 held out (subject 3).
model=(--rows 32 --cols 32 --filters 4 --depth 2 --lr 1e-3 --seed 3)
train1() { "$unet" train --data "$work/data" "${model[@]}" "$@" >/dev/null; }
train2() { mpi 2 "$unet" train --data "$work/data" "${model[@]}" "$@" >/dev/null; }

echo "-- exact resume, 2 ranks"
train2 --checkpoint "$work/straight.h5" --epochs 2 --batch-size 5 --timeline "$work/timeline.json"
train2 --checkpoint "$work/resumed.h5" --epochs 1 --batch-size 5
train2 --checkpoint "$work/resumed.h5" --epochs 2 --batch-size 5 --resume
"$unet" compare "$work/straight.last.h5" "$work/resumed.last.h5" --tolerance 0 --state

echo "-- the metrics log across the resume, and the --timeline trace of both ranks"
# The figures (epoch to lr; not the timings) of the straight and the resumed run's logs agree.
[ "$(wc -l <"$work/straight.csv")" -eq 3 ] && [ "$(cut -d, -f1-7 "$work/straight.csv")" = "$(cut -d, -f1-7 "$work/resumed.csv")" ] \
    || { paste -d'\n' "$work/straight.csv" "$work/resumed.csv"; echo "FAIL: the metrics logs differ"; exit 1; }
if command -v python3 >/dev/null; then
    python3 - "$work/timeline.json" <<'PY'
import json, sys
from collections import Counter
events = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e["ph"] == "X"]
steps = Counter((e["pid"], e["args"]["epoch"]) for e in events if e["name"] == "step")
assert steps == {(r, e): 4 for r in (0, 1) for e in (1, 2)}, steps  # 16 images, batches of 5: 4 steps
for phase in ("load", "forward", "loss", "wait", "loss_gradient", "backward", "allreduce", "adam"):
    assert sum(e["name"] == phase for e in events) == 16, phase
assert all(e["dur"] >= 0 for e in events)
mean = lambda name, r: sum(e["dur"] for e in events if e["name"] == name and e["pid"] == r) / 8000
print("trace: " + "; ".join(f"rank {r}: forward {mean('forward', r):.1f} ms, wait {mean('wait', r):.1f} ms, allreduce {mean('allreduce', r):.1f} ms per step" for r in (0, 1)))
PY
else
    grep -q '"name":"allreduce".*"pid":1' "$work/timeline.json" || { echo "FAIL: no rank 1 allreduce in the trace"; exit 1; }
fi

for batch in 4 5 7; do  # 16 images: 2+2 per step (even); 3+2 (uneven) and a last batch of 1 (1+0); 4+3 and a last batch of 2 (1+1)
    echo "-- 2 ranks vs 1 rank, batch $batch"
    train1 --checkpoint "$work/one-$batch.h5" --epochs 2 --batch-size "$batch"
    train2 --checkpoint "$work/two-$batch.h5" --epochs 2 --batch-size "$batch"
    "$unet" compare "$work/one-$batch.last.h5" "$work/two-$batch.last.h5" --tolerance 1e-5
done

echo "-- resume with another rank count: 1 rank for epoch 1, 2 ranks for epoch 2"
train1 --checkpoint "$work/mixed.h5" --epochs 1 --batch-size 5
train2 --checkpoint "$work/mixed.h5" --epochs 2 --batch-size 5 --resume
"$unet" compare "$work/one-5.last.h5" "$work/mixed.last.h5" --tolerance 1e-5

echo "-- a drifting replica aborts the job, naming its rank"
set +e
UNET_TEST_CORRUPT_RANK=1 mpi 2 -x UNET_TEST_CORRUPT_RANK "$unet" train --data "$work/data" "${model[@]}" \
    --checkpoint "$work/drift.h5" --epochs 2 --batch-size 5 >"$work/drift.out" 2>&1
status=$?
set -e
[ "$status" -ne 0 ] || { echo "FAIL: the job with a drifting replica succeeded"; exit 1; }
grep -q "the weights of rank 1 differ from rank 0's" "$work/drift.out" || { cat "$work/drift.out"; echo "FAIL: no message naming rank 1"; exit 1; }
[ "$status" -ne 124 ] || { echo "FAIL: the job hung (timeout)"; exit 1; }
[ ! -e "$work/drift.h5" ] || { echo "FAIL: a checkpoint was written for the drifted epoch"; exit 1; }
echo "aborted with status $status: $(grep -m1 'differ from' "$work/drift.out")"

echo "-- predict sharded over 2 ranks == 1 rank"
# 7 test images: shares of 4 and 3; with forward batches of 4 the GEMM shapes are the 1-rank ones,
# so the masks are bit-identical.
OPENBLAS_NUM_THREADS=1 "$unet" predict --data "$work/data" --checkpoint "$work/one-5.h5" --batch-size 4 --out "$work/p1.npy" --png "$work/pictures1" 2>/dev/null
mpi 2 "$unet" predict --data "$work/data" --checkpoint "$work/one-5.h5" --batch-size 4 --out "$work/p2.npy" --png "$work/pictures2" 2>/dev/null
cmp "$work/p1.npy" "$work/p2.npy" || { echo "FAIL: the 2-rank masks differ from the 1-rank masks"; exit 1; }
[ "$(ls "$work/pictures2" | wc -l)" -eq 7 ] || { ls -a "$work/pictures2"; echo "FAIL: not one picture per test image"; exit 1; }
diff -r "$work/pictures1" "$work/pictures2" || { echo "FAIL: the 2-rank pictures differ from the 1-rank pictures"; exit 1; }
echo "identical masks and pictures"

echo "-- evaluate sharded over 2 ranks == 1 rank"
one=$("$unet" evaluate --data "$work/data" --checkpoint "$work/one-5.h5" --batch-size 3 --png "$work/evaluated1" 2>/dev/null)
two=$(mpi 2 "$unet" evaluate --data "$work/data" --checkpoint "$work/one-5.h5" --batch-size 3 --png "$work/evaluated2" 2>/dev/null)
[ "$one" = "$two" ] || { echo "FAIL: 1 rank: $one; 2 ranks: $two"; exit 1; }
[ "$(ls "$work/evaluated2" | wc -l)" -eq 8 ] || { ls -a "$work/evaluated2"; echo "FAIL: not 7 pictures and scores.csv"; exit 1; }
# Other forward batch shapes than one rank's: the scores agree to 4 places (as the printed figures).
rounded() { awk -F, -v OFS=, 'NR > 1 { for (i = 4; i <= 6; i++) $i = sprintf("%.4f", $i) } 1' "$1/scores.csv"; }
[ "$(ls "$work/evaluated1")" = "$(ls "$work/evaluated2")" ] && [ "$(rounded "$work/evaluated1")" = "$(rounded "$work/evaluated2")" ] \
    || { diff "$work/evaluated1/scores.csv" "$work/evaluated2/scores.csv"; echo "FAIL: the 2-rank pictures or scores differ from the 1-rank ones"; exit 1; }
echo "$two"

echo "-- report --data sharded over 2 ranks == 1 rank"
"$unet" report --checkpoint "$work/one-5.h5" --data "$work/data" --batch-size 3 --out "$work/report1.html" 2>/dev/null
mpi 2 "$unet" report --checkpoint "$work/one-5.h5" --data "$work/data" --batch-size 3 --out "$work/report2.html" 2>/dev/null
# The same pictures in the same order, the same scores to 4 places (other forward batch shapes).
grid() { grep -o 'data-index="[0-9]*" data-score="[0-9.]*"' "$1" | awk -F'"' '{ printf "%s %.4f\n", $2, $4 }'; }
[ "$(grid "$work/report1.html" | wc -l)" -eq 7 ] && [ "$(grid "$work/report1.html")" = "$(grid "$work/report2.html")" ] \
    || { diff <(grid "$work/report1.html") <(grid "$work/report2.html"); echo "FAIL: the 2-rank report's pictures differ from the 1-rank report's"; exit 1; }
echo "the same 7 pictures, worst first: $(grid "$work/report2.html" | head -3 | tr '\n' ' ')..."

echo "-- an error on rank 0 ends the whole job"
if mpi 2 "$unet" train --data "$work/missing" --checkpoint "$work/x.h5" "${model[@]}" >"$work/err.out" 2>&1; then
    echo "FAIL: training on a missing folder succeeded"; exit 1
fi
grep -q "^\[rank 0\] error: .*missing" "$work/err.out" || { cat "$work/err.out"; echo "FAIL: no rank-prefixed error"; exit 1; }
grep -m1 "^\[rank 0\]" "$work/err.out"

echo "-- more ranks than images in a batch: refused before any work"
if mpi 2 "$unet" train --data "$work/data" --checkpoint "$work/ranks.h5" "${model[@]}" --batch-size 1 >"$work/err.out" 2>&1; then
    echo "FAIL: --batch-size 1 on 2 ranks succeeded"; exit 1
fi
grep -q "^\[rank [01]\] error: --batch-size 1 is smaller than the job's 2 ranks" "$work/err.out" \
    || { cat "$work/err.out"; echo "FAIL: no one-line error about the ranks"; exit 1; }
[ ! -e "$work/ranks.h5" ] && [ ! -e "$work/ranks.last.h5" ] || { echo "FAIL: a checkpoint was written"; exit 1; }
grep -m1 "^\[rank [01]\]" "$work/err.out"
echo "-- ranks with different OpenBLAS kernels: one warning on rank 0"
mixed() {
    local common=(-x OPENBLAS_NUM_THREADS=1 "$unet" "$@")
    timeout 300 mpirun "${MPIRUN_FLAGS[@]}" --oversubscribe -np 1 -x OPENBLAS_CORETYPE=Haswell "${common[@]}" \
        : -np 1 -x OPENBLAS_CORETYPE=Zen "${common[@]}"
}
warning="warning: the ranks run different OpenBLAS kernels (rank 0 Haswell, rank 1 Zen)"
mixed train --data "$work/data" "${model[@]}" --checkpoint "$work/mixedcore.h5" --epochs 1 --batch-size 5 >/dev/null 2>"$work/core-train.err"
mixed predict --data "$work/data" --checkpoint "$work/mixedcore.h5" --out "$work/mixedcore.npy" >/dev/null 2>"$work/core-predict.err"
mixed evaluate --data "$work/data" --checkpoint "$work/mixedcore.h5" >/dev/null 2>"$work/core-evaluate.err"
for command in train predict evaluate; do
    [ "$(grep -c "different OpenBLAS kernels" "$work/core-$command.err")" -eq 1 ] && grep -q "^$warning" "$work/core-$command.err" \
        || { cat "$work/core-$command.err"; echo "FAIL: unet $command with Haswell and Zen ranks: not one warning naming both"; exit 1; }
done
mpi 2 "$unet" predict --data "$work/data" --checkpoint "$work/mixedcore.h5" --out "$work/samecore.npy" >/dev/null 2>"$work/core-same.err"
if grep -q "different OpenBLAS kernels" "$work/core-same.err"; then
    cat "$work/core-same.err"; echo "FAIL: ranks of one kind warned"; exit 1
fi
echo "$warning ... (train, predict, evaluate; none with alike ranks)"

echo "distributed tests passed"
