#!/usr/bin/env bash
# Two builds of `unet` side by side: runs `unet bench ARGS --json` with each binary in turn,
# ROUNDS times (A, B, A, B, ...), and prints each run's images/s (the mean over the timed steps,
# and the median step), the per-round ratios B / A and their median, and each binary's peak RSS.
# On a shared, noisy machine the per-round ratio of two runs made seconds apart is the figure to
# quote, not either absolute time.
#   Launch/bench/compare-builds.sh OLD_UNET NEW_UNET [ROUNDS] [-- unet bench arguments]
# Example (a commit against the working tree, both in release):
#   git worktree add /tmp/old-tree COMMIT && (cd /tmp/old-tree && swift build -c release)
#   swift build -c release
#   Launch/bench/compare-builds.sh /tmp/old-tree/.build/release/unet .build/release/unet 6 \
#       -- --rows 96 --cols 96 --upsample transpose --steps 4
# Environment: THREADS=2 (OPENBLAS_NUM_THREADS, the kernels' threads); A_ENV, B_ENV: variable
# assignments for one side only, e.g. to compare two settings of one build:
#   A_ENV=UNET_WINOGRAD_KERNEL=1048576 B_ENV=UNET_WINOGRAD_KERNEL=2097152 \
#       Launch/bench/compare-builds.sh .build/release/unet .build/release/unet 5 -- --mode infer --steps 8
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
a=$1 b=$2
shift 2
rounds=5
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
for bin in "$a" "$b"; do
    [ -x "$bin" ] || { echo "compare-builds: $bin: not an executable" >&2; exit 1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq "$rounds"); do
    for side in A B; do
        bin=$a side_env=${A_ENV:-}
        [ "$side" = B ] && bin=$b side_env=${B_ENV:-}
        # shellcheck disable=SC2086  # side_env: words of NAME=VALUE assignments
        json=$(env OPENBLAS_NUM_THREADS=${THREADS:-2} $side_env "$bin" bench "$@" --json 2>/dev/null | tail -1)
        echo "$round $side $json" >>"$out"
        echo "compare-builds: round $round/$rounds $side $(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(round(d["images_per_s"], 2), "images/s")' "$json")" >&2
    done
done
python3 - "$out" "$a" "$b" <<'PY'
import json, os, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    round_, side, text = line.split(" ", 2)
    runs.setdefault(side, []).append(json.loads(text))
a, b = runs["A"], runs["B"]
def row(rs, key, digits):
    return " ".join(format(r[key], f".{digits}f") for r in rs)
for side, name, rs in (("A", sys.argv[2], a), ("B", sys.argv[3], b)):
    print(f"{side} {name} {os.environ.get(side + '_ENV', '')}".rstrip())
    print("  images/s per round:    " + row(rs, "images_per_s", 2))
    print("  median step per round: " + row(rs, "median_step_images_per_s", 2))
    # The job's peak (builds before issue 14 print only the largest rank's: the same for 1 rank).
    print("  peak RSS MB (job):     " + " ".join(format(r.get("peak_rss_total_mb", r["peak_rss_mb"]), ".0f") for r in rs))
ratios = [y["images_per_s"] / x["images_per_s"] for x, y in zip(a, b)]
print("B / A per round: " + " ".join(format(r, ".3f") for r in ratios) + f"; median {statistics.median(ratios):.3f}")
PY
