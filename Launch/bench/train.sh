#!/usr/bin/env bash
# Training throughput of `unet train` (release, 2 cores): a 200-image synthetic set, 3 epochs of
# the tutorial's model and recipe (64x80, batch 32), each epoch's line as the tool prints it;
# then `unet bench` for train and infer, RUNS times each, with the median images/s.
#   Launch/bench/train.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
Launch/install-deps.sh
swift build -c release >/dev/null
unet="$(swift build -c release --show-bin-path)/unet"
runs=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); date: $(date -u +%F); commit $(git rev-parse --short HEAD)"
"$unet" synth --out "$work/raw" --train 200 --test 20 --subjects 8 --seed 3 2>/dev/null
"$unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null 2>&1
echo "== unet train --epochs 3 (200 images, 8 subjects; 160 train / 40 validation)"
/usr/bin/time -f "peak RSS %M kB, wall %e s" "$unet" train --data "$work/data" --checkpoint "$work/unet.h5" --epochs 3 2>&1 | grep -v '^train:'
for mode in train infer; do
    echo "== unet bench --mode $mode (64x80, batch 32, 32 filters, depth 4), $runs runs"
    for _ in $(seq "$runs"); do "$unet" bench --mode "$mode" --steps 4 --json | tail -1; done > "$work/$mode.jsonl"
    python3 - "$work/$mode.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ips = sorted(r["images_per_s"] for r in rows)
print(f"images/s median {statistics.median(ips):.2f} (min {ips[0]:.2f}, max {ips[-1]:.2f}); "
      f"GFLOP/s median {statistics.median(r['gflops'] for r in rows):.1f}; peak RSS {max(r['peak_rss_mb'] for r in rows):.0f} MB")
PY
done
