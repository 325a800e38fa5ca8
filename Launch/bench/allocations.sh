#!/usr/bin/env bash
# Shows that a training step allocates nothing: runs `unet bench` (release, a small model) under
# valgrind's DHAT for two step counts and compares the heap blocks allocated, split into those
# allocated by our code and those allocated inside OpenBLAS (whose threaded GEMM mallocs a job
# array per call in Debian's build). Our blocks must not grow with the number of steps.
#   Launch/bench/allocations.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
swift build -c release >/dev/null
unet="$(swift build -c release --show-bin-path)/unet"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for steps in 2 6; do
    valgrind --tool=dhat --dhat-out-file="$work/$steps.json" "$unet" bench --mode "${MODE:-train}" \
        --rows 32 --cols 32 --filters 4 --depth 2 --batch-size 4 --warmup 1 --steps "$steps" >/dev/null 2>&1
done
python3 - "$work" <<'PY'
import json, sys
def blocks(path):
    d = json.load(open(path)); ftbl = d["ftbl"]
    ours = [0, 0]; blas = [0, 0]  # blocks, bytes
    for p in d["pps"]:
        t = blas if any("openblas" in ftbl[f] for f in p["fs"]) else ours
        t[0] += p["tbk"]; t[1] += p["tb"]
    return ours, blas
o2, b2 = blocks(sys.argv[1] + "/2.json"); o6, b6 = blocks(sys.argv[1] + "/6.json")
for steps, o, b in ((2, o2, b2), (6, o6, b6)):
    print(f"{steps} steps: ours {o[0]} blocks / {o[1]} bytes; OpenBLAS {b[0]} blocks / {b[1]} bytes")
print(f"per step: ours {(o6[0] - o2[0]) / 4:g} blocks; OpenBLAS {(b6[0] - b2[0]) / 4:g} blocks, {(b6[1] - b2[1]) / 4:g} bytes")
sys.exit(0 if o6 == o2 else 1)
PY
