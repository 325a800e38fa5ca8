#!/usr/bin/env bash
# Shows that two builds of `unet` train the same model to the bit: for a change meant to leave
# the results alone (a restructure), the build before it against the build after.
#   Launch/same-results.sh OLD_UNET NEW_UNET [-- more unet train options]
# On a small synthetic set (40 training images of 4 subjects, 6 test images), with each binary:
# 3 epochs in one process; 3 epochs on 2 ranks (mpirun); 1 epoch then --resume to 3; and
# --epochs 0. Each pair of checkpoints (latest and best) must be bit-identical in weights and
# training state (`unet compare --tolerance 0 --state`), and each pair of metrics logs equal in
# every figure but the timings (columns epoch to lr). Exit status 0 when all are the same.
# Example:
#   git worktree add /tmp/old-tree HEAD~3 && (cd /tmp/old-tree && swift build -c release)
#   swift build -c release
#   Launch/same-results.sh /tmp/old-tree/.build/release/unet .build/release/unet
set -euo pipefail
cd "$(dirname "$0")/.."
source Launch/mpi-env.sh
[ $# -ge 2 ] || { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
old=$1 new=$2
shift 2
[ "${1:-}" != "--" ] || shift
for bin in "$old" "$new"; do [ -x "$bin" ] || { echo "same-results: $bin: not an executable" >&2; exit 1; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$new" synth --out "$work/raw" --train 40 --test 6 --subjects 4 --seed 9 >/dev/null 2>&1
"$new" prepare --raw "$work/raw" --out "$work/data" >/dev/null 2>&1
recipe=(--data "$work/data" --batch-size 8 --rows 32 --cols 32 --filters 8 --depth 3 --lr 1e-4 --quiet "$@")
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

runs() {  # runs() SIDE BINARY: every training of one side into $work/SIDE-*.h5
    local side=$1 unet=$2
    "$unet" train "${recipe[@]}" --epochs 3 --checkpoint "$work/$side-one.h5" 2>/dev/null
    mpirun "${MPIRUN_FLAGS[@]}" --oversubscribe -np 2 -x OPENBLAS_NUM_THREADS "$unet" train "${recipe[@]}" --epochs 3 \
        --checkpoint "$work/$side-two.h5" 2>/dev/null
    "$unet" train "${recipe[@]}" --epochs 1 --checkpoint "$work/$side-resumed.h5" 2>/dev/null
    "$unet" train "${recipe[@]}" --epochs 3 --resume --checkpoint "$work/$side-resumed.h5" 2>/dev/null
    "$unet" train "${recipe[@]}" --epochs 0 --checkpoint "$work/$side-initial.h5" 2>/dev/null
}
runs old "$old"
runs new "$new"
status=0
for run in one two resumed initial; do
    for file in "$run.h5" "$run.last.h5"; do
        if result=$("$new" compare "$work/old-$file" "$work/new-$file" --tolerance 0 --state 2>&1 | tail -1) \
            && [ "$result" = "same: weights and training state bit-identical" ]; then
            echo "$file: $result"
        else
            echo "$file: DIFFERENT: $result"; status=1
        fi
    done
    if [ "$(cut -d, -f1-7 "$work/old-$run.csv")" = "$(cut -d, -f1-7 "$work/new-$run.csv")" ]; then
        echo "$run.csv: the same figures ($(($(wc -l <"$work/new-$run.csv") - 1)) epochs)"
    else
        echo "$run.csv: DIFFERENT"; diff <(cut -d, -f1-7 "$work/old-$run.csv") <(cut -d, -f1-7 "$work/new-$run.csv") || true; status=1
    fi
done
[ $status -eq 0 ] && echo "same-results: the two builds train the same models" || echo "same-results: FAILED"
exit $status
