#!/usr/bin/env bash
# The multi-rank reliability acceptance (issue 6, Docs/RELIABILITY.md), called by Launch/test.sh:
#   Launch/test-reliability.sh BIN_DIR
# 1. kill -9 of rank 1, then of rank 0, in the middle of an epoch: mpirun ends the job (non-zero, timed), the last
#    checkpoint loads, and --resume with 2 ranks ends bit-identical to a run never interrupted (and
#    each resumed run's metrics log, unet.csv, has the uninterrupted run's rows, in the cases below too);
# 2. preemption, three ways: SIGUSR1 to mpirun (what Launch/pipeline.sh turns a SIGTERM into:
#    mpirun forwards it), SIGTERM to mpirun (mpirun sends SIGTERM to the ranks after
#    odls_base_sigkill_timeout, Launch/mpi-env.sh) and SIGTERM to every rank (as SLURM does):
#    the ranks finish the step, rank 0 saves its position in the epoch, and --resume ends
#    bit-identical to the uninterrupted run;
#    the same for one process (SIGINT, as Ctrl-C sends it: exit 130) and through Launch/mpi-local.sh (SIGTERM to
#    the script: it forwards SIGUSR1 to mpirun, exits 143 without predicting; RESUME=1 finishes);
# 3. a rank that stalls (test hook UNET_TEST_STALL_AT) makes the others' watchdog abort the job
#    after --collective-timeout, naming the operation and the step (the setup phase, while rank 0
#    reads the data, waits at least 600 s whatever the timeout, so a loaded machine is no stall);
#    the same through `unet run --collective-timeout`, whose option reaches the watchdog too.
set -euo pipefail
cd "$(dirname "$0")/.."
source Launch/mpi-env.sh
bin=${1:?usage: test-reliability.sh BIN_DIR}
unet="$bin/unet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpi() { timeout 300 mpirun "${MPIRUN_FLAGS[@]}" --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS=1 "$@"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
fail() { echo "FAIL: $*"; exit 1; }

"$unet" synth --out "$work/raw" --train 23 --test 7 --subjects 3 --seed 5 >/dev/null
"$unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null
# 16 training images, batch 2: 8 steps per epoch (about 0.1 s each with 2 ranks in a debug build).
model=(--data "$work/data" --rows 32 --cols 48 --filters 8 --depth 3 --lr 1e-3 --seed 3 --batch-size 2)
epochs=12
mpi "$unet" train "${model[@]}" --checkpoint "$work/straight.h5" --epochs $epochs >/dev/null 2>&1

# The pid of rank R of the job training into CHECKPOINT.
rank_pid() {
    local pid
    for pid in $(pgrep -f "unet train .*--checkpoint $2" || true); do
        if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then echo "$pid"; return; fi
    done
}
# The pid of the mpirun of the job training into CHECKPOINT (not another mpirun on the machine:
# CI or another test run may be using it too).
job_mpirun() {
    pgrep -f "^mpirun .*--checkpoint $1( |\$)" | head -1
}
# Waits until FILE exists (an epoch is done), then a little more: the job is inside an epoch.
wait_for() {
    for _ in $(seq 2400); do [ -e "$1" ] && { sleep 0.35; return; }; sleep 0.05; done
    fail "$1 never appeared"
}
# The metrics logs A and B list the same epochs with the same figures (epoch to lr; the timings differ).
same_log() {
    cmp -s <(cut -d, -f1-7 "$1") <(cut -d, -f1-7 "$2") || { diff <(cut -d, -f1-7 "$1") <(cut -d, -f1-7 "$2"); fail "$2 differs from $1"; }
}
resume_and_compare() {
    mpi "$unet" train "${model[@]}" --checkpoint "$1" --epochs $epochs --resume >"$1.resume.out" 2>&1 \
        || { cat "$1.resume.out"; fail "the resumed run failed"; }
    "$unet" compare "$work/straight.last.h5" "${1%.h5}.last.h5" --tolerance 0 --state >"$1.compare" \
        || { cat "$1.compare"; fail "resumed != uninterrupted"; }
    same_log "$work/straight.csv" "${1%.h5}.csv"
    echo "   $(grep -m1 'resuming after' "$1.resume.out" | sed 's/^train: //'); then: $(tail -1 "$1.compare"); the metrics log has the uninterrupted run's rows"
}

kill_rank() {  # R: kill -9 of rank R in the middle of an epoch, then resume with 2 ranks
    local name="kill$1" job victim start end status=0
    mpi "$unet" train "${model[@]}" --checkpoint "$work/$name.h5" --epochs $epochs >"$work/$name.out" 2>&1 &
    job=$!
    wait_for "$work/$name.last.h5"
    victim=$(rank_pid "$1" "$work/$name.h5")
    [ -n "$victim" ] || fail "no rank $1 process found"
    start=$(now)
    kill -9 "$victim"
    wait $job || status=$?
    end=$(now)
    [ "$status" -ne 0 ] || fail "mpirun exited 0 after rank $1 was killed"
    [ "$status" -ne 124 ] || fail "the job hung (timeout)"
    "$unet" compare "$work/$name.last.h5" "$work/$name.last.h5" --tolerance 0 >/dev/null || fail "the last checkpoint does not load"
    echo "   mpirun ended $(elapsed "$start" "$end") s after kill -9 of rank $1, status $status; $name.last.h5 loads"
    resume_and_compare "$work/$name.h5"
}
echo "-- kill -9 of rank 1 in the middle of an epoch"
kill_rank 1
echo "-- kill -9 of rank 0 (the one writing checkpoints) in the middle of an epoch"
kill_rank 0

preempt() {  # NAME HOW: start a job, stop it mid-epoch by HOW, check the stop, resume, compare
    local name=$1 how=$2 out="$work/$1.out" slow=()
    # mpirun passes its SIGTERM on 10 s later: a step delay keeps the job running past that
    # on any machine (the numbers do not change).
    # Every stop test runs slowed down a little, so the signal lands mid-run on a fast machine.
    slow=(-x UNET_TEST_STEP_DELAY=0.05)
    [ "$how" != mpirun-term ] || slow=(-x UNET_TEST_STEP_DELAY=0.3)
    mpi "${slow[@]}" "$unet" train "${model[@]}" --checkpoint "$work/$name.h5" --epochs $epochs >"$out" 2>&1 &
    local job=$!
    wait_for "$work/$name.last.h5"
    local start status=0
    start=$(now)
    case $how in
        mpirun-usr1) kill -USR1 "$(job_mpirun "$work/$name.h5")" ;;
        mpirun-term) kill -TERM "$(job_mpirun "$work/$name.h5")" ;;
        ranks-term) kill -TERM "$(rank_pid 0 "$work/$name.h5")" "$(rank_pid 1 "$work/$name.h5")" ;;
    esac
    wait $job || status=$?
    local end
    end=$(now)
    [ "$status" -ne 124 ] || fail "$how: the job hung (timeout)"
    # The ranks exit 0 after a clean stop; mpirun itself exits 1 when it was the one told to
    # end the job (SIGTERM: it signals the ranks after odls_base_sigkill_timeout).
    local expected=0
    [ "$how" != mpirun-term ] || expected=1
    [ "$status" -eq $expected ] || { cat "$out"; fail "$how: mpirun exited $status, expected $expected"; }
    grep -q "stopped by .* in epoch [0-9]* after step [0-9]*" "$out" || { cat "$out"; fail "$how: no stop message"; }
    echo "   $how: $(grep -m1 'stopped by' "$out" | sed 's/^train: //') -- mpirun exited $status $(elapsed "$start" "$end") s after the signal"
    resume_and_compare "$work/$name.h5"
}
echo "-- preemption: SIGUSR1 to mpirun (forwarded to every rank)"
preempt usr1 mpirun-usr1
echo "-- preemption: SIGTERM to mpirun"
preempt term mpirun-term
echo "-- preemption: SIGTERM to every rank (as SLURM sends it)"
preempt slurm ranks-term

echo "-- preemption of one process (no mpirun): SIGINT (Ctrl-C)"
"$unet" train "${model[@]}" --checkpoint "$work/solo.h5" --epochs $epochs >/dev/null 2>&1
UNET_TEST_STEP_DELAY=0.05 "$unet" train "${model[@]}" --checkpoint "$work/solo-stop.h5" --epochs $epochs >"$work/solo.out" 2>&1 &
job=$!
wait_for "$work/solo-stop.last.h5"
kill -INT $job
status=0
wait $job || status=$?
[ "$status" -eq 130 ] || { cat "$work/solo.out"; fail "one process: status $status after SIGINT, expected 130"; }
"$unet" train "${model[@]}" --checkpoint "$work/solo-stop.h5" --epochs $epochs --resume >/dev/null 2>&1
"$unet" compare "$work/solo.last.h5" "$work/solo-stop.last.h5" --tolerance 0 --state >/dev/null || fail "one process: resumed != uninterrupted"
same_log "$work/solo.csv" "$work/solo-stop.csv"
echo "   $(grep -m1 'stopped by' "$work/solo.out" | sed 's/^train: //') -- exit 130; resumed: bit-identical"

echo "-- preemption through the launch script: SIGTERM to Launch/mpi-local.sh"
pipeline_env=(UNET_BIN="$unet" OUT="$work/pipe" EPOCHS=$epochs BATCH=2 LR=1e-3 TRAIN=23 TEST=7 SUBJECTS=3 SEED=5
              UNET_TRAIN_ARGS="--rows 32 --cols 48 --filters 8 --depth 3 --seed 3")
# (Not under timeout(1), which signals its whole process group, mpirun included.)
env "${pipeline_env[@]}" UNET_TEST_STEP_DELAY=0.05 Launch/mpi-local.sh 2 >"$work/pipe.out" 2>&1 &
job=$!
wait_for "$work/pipe/unet.last.h5"
kill -TERM $job
status=0
wait $job || status=$?
[ "$status" -eq 143 ] || { cat "$work/pipe.out"; fail "mpi-local.sh: status $status after SIGTERM, expected 143"; }
grep -q "stopped by SIGUSR1" "$work/pipe.out" || { cat "$work/pipe.out"; fail "mpi-local.sh: the ranks did not stop on the forwarded SIGUSR1"; }
[ ! -e "$work/pipe/imgs_mask_test.npy" ] || fail "mpi-local.sh: predict ran after the stop"
env "${pipeline_env[@]}" RESUME=1 timeout 300 Launch/mpi-local.sh 2 >"$work/pipe2.out" 2>&1 || { cat "$work/pipe2.out"; fail "mpi-local.sh RESUME=1 failed"; }
[ -s "$work/pipe/submission.csv" ] || fail "mpi-local.sh RESUME=1 wrote no submission"
"$unet" compare "$work/straight.last.h5" "$work/pipe/unet.last.h5" --tolerance 0 --state >/dev/null || fail "mpi-local.sh: resumed != uninterrupted"
echo "   $(grep -m1 'stopped by' "$work/pipe.out" | sed 's/^train: //') -- script exit 143, no predict; RESUME=1 finished bit-identical to the uninterrupted run"

echo "-- a stalled rank: the watchdog aborts the job"
start=$(now)
status=0
UNET_TEST_STALL_AT=1:11:120 mpi -x UNET_TEST_STALL_AT "$unet" train "${model[@]}" --checkpoint "$work/stall.h5" \
    --epochs $epochs --collective-timeout 3 >"$work/stall.out" 2>&1 || status=$?
end=$(now)
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { cat "$work/stall.out"; fail "stall: status $status"; }
grep -q "\[rank 0\] error: stall: allreduce .*Adam step 12" "$work/stall.out" || { cat "$work/stall.out"; fail "stall: no message naming the operation and the step"; }
echo "   $(grep -m1 'error: stall' "$work/stall.out") -- job ended $(elapsed "$start" "$end") s after its start, status $status"
echo "-- a stalled rank under unet run: --collective-timeout reaches the watchdog"
# Rank 1 sleeps 120 s after Adam step 3; with the default timeout (600 s) the job would wait it out
# and succeed.
start=$(now)
status=0
UNET_TEST_STALL_AT=1:3:120 mpi -x UNET_TEST_STALL_AT "$unet" run --raw "$work/raw" --out "$work/runstall" \
    "${model[@]:2}" --epochs 2 --collective-timeout 3 >"$work/runstall.out" 2>&1 || status=$?
end=$(now)
[ "$status" -ne 0 ] && [ "$status" -ne 124 ] || { cat "$work/runstall.out"; fail "run stall: status $status"; }
grep -q "\[rank 0\] error: stall: .*Adam step 4" "$work/runstall.out" || { cat "$work/runstall.out"; fail "run stall: no message naming the operation and the step"; }
awk -v t="$(elapsed "$start" "$end")" 'BEGIN { exit !(t < 100) }' || fail "run stall: the job took $(elapsed "$start" "$end") s (the stall is 120 s)"
echo "   $(grep -m1 'error: stall' "$work/runstall.out") -- job ended $(elapsed "$start" "$end") s after its start, status $status"
echo "reliability: all passed"
