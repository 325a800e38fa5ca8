# Sourced by Launch/local.sh, mpi-local.sh, cluster.sh and slurm.sbatch: the pipeline of
# Launch/run.sh with its data-parallel stages started through a launcher (mpirun, srun, or none).
#
#   unet_cores                          physical cores this process may use (CORES=... overrides)
#   pipeline_binary                     sets $unet: $UNET_BIN when set (nothing is built), else
#                                       installs missing packages and builds in release
#   pipeline_run RAW_DIR [LAUNCHER...]  runs the stages below; RAW_DIR may be empty
#
# Where each stage runs. Only rank 0 reads the data folder and writes files, so:
#   unet synth    once, here, without the launcher (only when RAW_DIR is empty: a synthetic set
#                 in $OUT/raw-synthetic, reused when present)
#   unet prepare  once, here, without the launcher: TIFFs to $OUT/data/*.npy
#   unet train    through the launcher: rank 0 reads $OUT/data, preprocesses and broadcasts the
#                 arrays; every rank trains its share of each batch; rank 0 writes the checkpoints
#   unet predict  through the launcher: rank 0 reads the checkpoint and the test images, every
#                 rank predicts a share, rank 0 writes $OUT/imgs_mask_test.npy
#   unet submit   once, here, without the launcher: $OUT/submission.csv
# "Here" is the machine running the script; under mpirun rank 0 is on the first host of the
# hostfile, so run the script there or keep $OUT on a filesystem that host sees at the same path.
# Not `mpirun unet run` (the same stages in one command, rank 0 alone for the file stages): its
# other ranks would wait for rank 0's synth and prepare in an MPI barrier, and Open MPI waits by
# polling, which takes cores from synth's and prepare's threads on the same node (measured here:
# the waiting rank used a third of a core, Running, all through rank 0's synth).
#
# Environment, as for Launch/run.sh: OUT (default: out in the repository), TRAIN, TEST, SUBJECTS,
# SEED (synthetic set), EPOCHS (20), BATCH (32, the global batch: ranks share it), LR (1e-5),
# UPSAMPLE (nearest), RESUME=1 (continue from $OUT/unet.last.h5). Besides:
#   UNET_TRAIN_ARGS   more `unet train` options, word-split, e.g. "--rows 32 --cols 32 --seed 3"
#   UNET_BIN          the unet binary to run; skips the install and the build
#   SWIFT_BUILD_ARGS  more `swift build` options, word-split, e.g. "--static-swift-stdlib"
# Relative RAW_DIR, OUT and UNET_BIN are taken from the directory the script was started in.

unet_repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# MPIRUN_FLAGS and unet_mpirun_exports (the -x flags for the ranks' environment).
# shellcheck source=mpi-env.sh
source "$unet_repository/Launch/mpi-env.sh"

# Physical cores in this process's CPU affinity (hyperthreads of one core count once): the
# number OpenBLAS threads and Open MPI's core binding should be sized by. `nproc` counts
# hardware threads; it is the fallback when lscpu is missing.
unet_cores() {
    if [ -n "${CORES:-}" ]; then echo "$CORES"; return; fi
    local allowed n
    allowed=$(awk '/^Cpus_allowed_list/ { print $2 }' /proc/self/status 2>/dev/null || true)
    n=$(lscpu -p=CPU,Core,Socket 2>/dev/null | awk -F, -v list="$allowed" '
        BEGIN {
            k = split(list, parts, ",")
            for (i = 1; i <= k; i++) {
                m = split(parts[i], r, "-")
                for (c = r[1] + 0; c <= (m > 1 ? r[2] : r[1]) + 0; c++) allowed[c] = 1
            }
        }
        /^#/ { next }
        list == "" || (($1 + 0) in allowed) { seen[$3 "," $2] = 1 }
        END { n = 0; for (s in seen) n++; print n }') || n=
    if [ -z "$n" ] || [ "$n" -lt 1 ]; then n=$(nproc); fi
    echo "$n"
}

# An absolute path for a path given relative to where the script was started.
unet_absolute() {
    case $1 in
        /*) echo "$1" ;;
        *) echo "$unet_start_directory/$1" ;;
    esac
}
unet_start_directory=${unet_start_directory:-$PWD}

pipeline_binary() {
    if [ -n "${UNET_BIN:-}" ]; then
        unet=$(unet_absolute "$UNET_BIN")
        [ -x "$unet" ] || { echo "pipeline: UNET_BIN=$UNET_BIN is not an executable file" >&2; exit 1; }
        return
    fi
    local build_args=()
    read -ra build_args <<<"${SWIFT_BUILD_ARGS:-}"
    (cd "$unet_repository" && Launch/install-deps.sh && swift build -c release "${build_args[@]}")
    unet="$(cd "$unet_repository" && swift build -c release "${build_args[@]}" --show-bin-path)/unet"
}

# Runs one stage and says so, with the launcher it goes through.
pipeline_stage() {
    echo "pipeline: $*" >&2
    "$@"
}

# Runs a data-parallel stage (its first word the launcher: mpirun, srun, or unet itself) in the
# background and passes a SIGTERM, SIGINT or SIGUSR1 sent to this script on as SIGUSR1, which
# `unet train` takes as a request to finish its step and save where it stopped
# (Docs/RELIABILITY.md), and which mpirun and srun forward to every rank without ending the job
# (mpirun answers a SIGTERM of its own by killing the ranks within 2 x odls_base_sigkill_timeout).
# After such a stop the script exits with 128 + the signal it got (the ranks exit 0 under
# mpirun) and runs no further stage; RESUME=1 continues the run.
pipeline_signal=
pipeline_launch() {
    echo "pipeline: $*" >&2
    "$@" &
    local child=$! status=0 sig
    for sig in TERM INT USR1; do
        # shellcheck disable=SC2064  # expand $sig and $child now
        trap "pipeline_signal=$sig; kill -USR1 $child 2>/dev/null || true" "$sig"
    done
    while true; do
        status=0
        wait "$child" || status=$?
        kill -0 "$child" 2>/dev/null || break  # else `wait` was interrupted by the trap: wait again
    done
    trap - TERM INT USR1
    if [ -n "$pipeline_signal" ]; then
        echo "pipeline: stopped by SIG$pipeline_signal (the stage's status: $status); continue with RESUME=1" >&2
        exit $((128 + $(kill -l "$pipeline_signal")))
    fi
    return "$status"
}

pipeline_run() {
    local raw=${1:-}
    shift || true
    local launcher=("$@")
    local out train_args=()
    out=$(unet_absolute "${OUT:-$unet_repository/out}")
    mkdir -p "$out"
    read -ra train_args <<<"${UNET_TRAIN_ARGS:-}"
    if [ "${RESUME:-0}" = 1 ]; then train_args+=(--resume); fi
    if [ -z "$raw" ]; then
        raw="$out/raw-synthetic"
        if [ -d "$raw" ]; then
            echo "pipeline: reusing the synthetic data set in $raw (delete it to make a new one)" >&2
        else
            pipeline_stage "$unet" synth --out "$raw" --train "${TRAIN:-120}" --test "${TEST:-30}" \
                --subjects "${SUBJECTS:-6}" --seed "${SEED:-42}"
        fi
    else
        raw=$(unet_absolute "$raw")
    fi

    pipeline_stage "$unet" prepare --raw "$raw" --out "$out/data" >/dev/null
    pipeline_launch "${launcher[@]}" "$unet" train --data "$out/data" --checkpoint "$out/unet.h5" \
        --epochs "${EPOCHS:-20}" --batch-size "${BATCH:-32}" --lr "${LR:-1e-5}" \
        --upsample "${UPSAMPLE:-nearest}" "${train_args[@]}"
    pipeline_launch "${launcher[@]}" "$unet" predict --data "$out/data" --checkpoint "$out/unet.h5" \
        --out "$out/imgs_mask_test.npy"
    pipeline_stage "$unet" submit --data "$out/data" --masks "$out/imgs_mask_test.npy" --out "$out/submission.csv"

    echo
    echo "pipeline: done. Outputs:"
    echo "  raw data:     $raw (train/, test/)"
    echo "  arrays:       $out/data/imgs_train.npy, imgs_mask_train.npy, imgs_subject_train.npy, imgs_test.npy, imgs_id_test.npy"
    echo "  checkpoints:  $out/unet.h5 (best by validation loss), $out/unet.last.h5 (latest)"
    echo "  predictions:  $out/imgs_mask_test.npy"
    echo "  submission:   $out/submission.csv"
}

# MPIRUN_FLAGS of Launch/mpi-env.sh (run as root, ob1, no CMA single copy) with the byte
# transports and the binding replaced: unet_mpirun_flags BTL_LIST BINDING_ARGS...
unet_mpirun_flags() {
    local btl=$1
    shift
    # shellcheck source=mpi-env.sh
    source "$unet_repository/Launch/mpi-env.sh"
    mpirun_flags=()
    local i=0
    while [ $i -lt ${#MPIRUN_FLAGS[@]} ]; do
        local flag=${MPIRUN_FLAGS[$i]}
        if [ "$flag" = --bind-to ]; then
            i=$((i + 2))
            continue
        fi
        if [ "$flag" = --mca ] && [ "${MPIRUN_FLAGS[$((i + 1))]}" = btl ]; then
            mpirun_flags+=(--mca btl "$btl")
            i=$((i + 3))
            continue
        fi
        mpirun_flags+=("$flag")
        i=$((i + 1))
    done
    mpirun_flags+=("$@")
}

# MPIRUN_EXTRA, more mpirun arguments as a bash array's contents (quotes allowed), e.g.
#   MPIRUN_EXTRA='--mca plm_rsh_agent "/opt/my agent.sh" --report-bindings'
# into the array mpirun_extra.
unet_mpirun_extra() {
    mpirun_extra=()
    if [ -n "${MPIRUN_EXTRA:-}" ]; then
        eval "mpirun_extra=(${MPIRUN_EXTRA})" || { echo "pipeline: cannot parse MPIRUN_EXTRA=$MPIRUN_EXTRA" >&2; exit 1; }
    fi
}
