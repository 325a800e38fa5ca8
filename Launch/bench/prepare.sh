#!/usr/bin/env bash
# Benchmark of the first pipeline stage: `unet synth` and `unet prepare` for 200 training and 50
# test images (580x420), in release, with hyperfine (median of several runs). When Python with
# NumPy and Pillow is present, the tutorial-style data.py (data_py_peer.py) runs alternately in the
# same invocation, so the ratio is measured side by side on the same noisy machine.
#   Launch/bench/prepare.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
Launch/install-deps.sh
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
swift build -c release >/dev/null
unet="$(swift build -c release --show-bin-path)/unet"
runs=${1:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "date: $(date -u +%F)"
"$unet" synth --out "$work/raw" --train 200 --test 50 --subjects 10 --seed 1 >/dev/null 2>&1

commands=(
    -n "unet synth (200+50)" "$unet synth --out $work/raw2 --train 200 --test 50 --subjects 10 --seed 1 --force"
    -n "unet prepare (200+50)" "$unet prepare --raw $work/raw --out $work/data"
)
if python3 -c "import numpy, PIL" 2>/dev/null; then
    commands+=(-n "python data.py peer (200+50)" "python3 Launch/bench/data_py_peer.py $work/raw $work/data-py")
fi
hyperfine --style basic --warmup 1 --runs "$runs" "${commands[@]}" --export-json "$work/times.json"
echo
# Medians, and ratios against `unet prepare` measured in the same invocation.
python3 - "$work/times.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
ref = next(r["median"] for r in results if r["command"].startswith("unet prepare"))
print(f"| command | median s | min s | max s | runs | vs unet prepare |")
print(f"|---|---|---|---|---|---|")
for r in results:
    print(f"| {r['command']} | {r['median']:.3f} | {r['min']:.3f} | {r['max']:.3f} | {len(r['times'])} | {r['median'] / ref:.2f}x |")
PY
