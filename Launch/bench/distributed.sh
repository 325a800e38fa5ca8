#!/usr/bin/env bash
# Data-parallel throughput (release): `unet bench --mode train` at 64x80, batch 32, the tutorial's
# model, in three layouts of the same 2 cores, alternated round by round so that a noisy machine
# slows all of them alike:
#   1x2      one rank, OPENBLAS_NUM_THREADS=2
#   2x1 shm  mpirun -np 2, one thread each, shared memory (vader)
#   2x1 tcp  mpirun -np 2, one thread each, TCP over loopback (btl tcp,self)
# Prints per layout the median images/s, its ratio to 1x2, and the median share of a step spent in
# the gradient allreduce (31.4 MB).
#   Launch/bench/distributed.sh [ROUNDS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source Launch/mpi-env.sh
Launch/install-deps.sh
swift build -c release >/dev/null
unet="$(swift build -c release --show-bin-path)/unet"
rounds=${1:-5}
steps=${2:-4}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); date: $(date -u +%F); commit $(git rev-parse --short HEAD)"
bench=(bench --mode train --steps "$steps" --warmup 1 --json)
tcp=(--bind-to none --mca pml ob1 --mca btl tcp,self)
if [ "$(id -u)" -eq 0 ]; then tcp+=(--allow-run-as-root); fi
for round in $(seq "$rounds"); do
    OPENBLAS_NUM_THREADS=2 "$unet" "${bench[@]}" | tail -1 >> "$work/1x2.jsonl"
    mpirun "${MPIRUN_FLAGS[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$unet" "${bench[@]}" | tail -1 >> "$work/2x1-shm.jsonl"
    mpirun "${tcp[@]}" -np 2 -x OPENBLAS_NUM_THREADS=1 "$unet" "${bench[@]}" | tail -1 >> "$work/2x1-tcp.jsonl"
    echo "round $round/$rounds done" >&2
done
python3 - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def load(name): return [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
base = load("1x2")
for name in ["1x2", "2x1-shm", "2x1-tcp"]:
    rows = load(name)
    # Ratio per round against the 1x2 run of the same round, then the median of the ratios.
    ratios = [r["images_per_s"] / b["images_per_s"] for r, b in zip(rows, base)]
    ips = [r["images_per_s"] for r in rows]
    print(f"{name:8s} images/s median {statistics.median(ips):6.2f} (min {min(ips):.2f}, max {max(ips):.2f})  "
          f"vs 1x2 {statistics.median(ratios):.3f}  allreduce {100 * statistics.median(r['allreduce_share'] for r in rows):4.1f}% of a step  "
          f"peak RSS {max(r.get('peak_rss_total_mb', r['peak_rss_mb']) for r in rows):.0f} MB in all ranks "
          f"({max(r['peak_rss_mb'] for r in rows):.0f} MB the largest rank)")
PY
