#!/usr/bin/env bash
# Issue 5's peer benchmark: `unet bench` against the identical U-Net in Keras 3 / TensorFlow-CPU
# (as installed, with oneDNN, with XLA) and in PyTorch CPU (NCHW, channels_last), each
# configuration its own process, alternated round by round in one invocation; prints per
# configuration the median images/s and peak RSS and the ratio ours / it (median of the per-round
# ratios), then ours against the fastest peer configuration and the fastest PyTorch one.
#   Launch/bench/peers.sh [ROUNDS] [STEPS]            (default 5 rounds, 4 timed steps per run)
# Environment (defaults: the tutorial's model and issue 5's setting):
#   MODE=train|infer  ROWS=64 COLS=80 BATCH=32 FILTERS=32 DEPTH=4 UPSAMPLE=nearest|transpose
#   THREADS=2         threads of every configuration (ours: OPENBLAS_NUM_THREADS; TF: intra- and
#                     inter-op threads; torch: set_num_threads; OMP_NUM_THREADS for the peers)
#   WARMUP=1          untimed steps before the timed ones (TF traces / XLA compiles in the first)
#   CONFIGS="ours tf-default tf-onednn tf-xla torch-nchw torch-cl"   a subset, or add ours-2x1
#                     (mpirun -np THREADS, one thread per rank; global batch BATCH); OURS_2X1=1 adds it
#   UNET_BIN=path     use this `unet` binary instead of building the worktree in release
#                     (UNET_SCRATCH=dir: swift build --scratch-path)
#   PEER_VENV_DIR=/tmp/unet-peer-venvs   throwaway venvs "tf" and "torch", created from
#                     Launch/bench/peers/requirements-*.txt on first use, reused while those files
#                     are unchanged; PEER_PYTHON=python3 creates them; PEER_PIP_ARGS extra pip args
#   PEER_TF_PYTHON / PEER_TORCH_PYTHON=path   use an existing interpreter instead of the venv
#   PEER_OUT=dir      keep the JSON lines and logs there
# Details and timings: Launch/bench/peers/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
steps=${2:-4}
MODE=${MODE:-train} ROWS=${ROWS:-64} COLS=${COLS:-80} BATCH=${BATCH:-32} FILTERS=${FILTERS:-32}
DEPTH=${DEPTH:-4} UPSAMPLE=${UPSAMPLE:-nearest} THREADS=${THREADS:-2} WARMUP=${WARMUP:-1}
configs=(${CONFIGS:-ours tf-default tf-onednn tf-xla torch-nchw torch-cl})
if [ "${OURS_2X1:-0}" = 1 ] && [[ " ${configs[*]} " != *" ours-2x1 "* ]]; then configs+=(ours-2x1); fi
venvs=${PEER_VENV_DIR:-/tmp/unet-peer-venvs}
peers=Launch/bench/peers

uses() { [[ " ${configs[*]} " == *" $1"* ]]; }
for c in "${configs[@]}"; do
    case $c in ours|ours-2x1|tf-default|tf-onednn|tf-xla|torch-nchw|torch-cl) ;;
        *) echo "peers: unknown configuration $c" >&2; exit 2 ;; esac
done

# A throwaway venv per framework, from the pinned requirements; rebuilt when they change.
make_venv() {
    local name=$1 req=$2 dir=$venvs/$1 stamp start
    stamp=$(sha256sum "$req" | cut -c1-16)
    if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.requirements" 2>/dev/null)" = "$stamp" ]; then return; fi
    echo "peers: creating the $name venv $dir from $req (once; reused while $req is unchanged)" >&2
    start=$SECONDS
    rm -rf "$dir"
    mkdir -p "$venvs"
    "${PEER_PYTHON:-python3}" -m venv "$dir"
    # shellcheck disable=SC2086
    "$dir/bin/pip" install --no-input -q ${PEER_PIP_ARGS:-} -r "$req" >&2
    echo "$stamp" > "$dir/.requirements"
    echo "peers: $name venv ready in $((SECONDS - start)) s, $(du -sh "$dir" | cut -f1)" >&2
}
tf_py=${PEER_TF_PYTHON:-}
torch_py=${PEER_TORCH_PYTHON:-}
if uses tf- && [ -z "$tf_py" ]; then make_venv tf "$peers/requirements-tf.txt"; tf_py=$venvs/tf/bin/python; fi
if uses torch- && [ -z "$torch_py" ]; then make_venv torch "$peers/requirements-torch.txt"; torch_py=$venvs/torch/bin/python; fi

unet=${UNET_BIN:-}
if uses ours && [ -z "$unet" ]; then
    Launch/install-deps.sh
    scratch=(${UNET_SCRATCH:+--scratch-path "$UNET_SCRATCH"})
    echo "peers: swift build -c release ${scratch[*]}" >&2
    swift build -c release "${scratch[@]}" >&2
    unet="$(swift build -c release "${scratch[@]}" --show-bin-path)/unet"
fi
if uses ours-2x1; then source Launch/mpi-env.sh; fi

shape=(--mode "$MODE" --rows "$ROWS" --cols "$COLS" --batch-size "$BATCH" --filters "$FILTERS"
       --depth "$DEPTH" --upsample "$UPSAMPLE" --steps "$steps" --warmup "$WARMUP")
run() {
    case $1 in
        ours) OPENBLAS_NUM_THREADS=$THREADS "$unet" bench "${shape[@]}" --json ;;
        ours-2x1) mpirun "${MPIRUN_FLAGS[@]}" -np "$THREADS" -x OPENBLAS_NUM_THREADS=1 "$unet" bench "${shape[@]}" --json ;;
        tf-*) OMP_NUM_THREADS=$THREADS "$tf_py" "$peers/keras_bench.py" --config "${1#tf-}" --threads "$THREADS" "${shape[@]}" ;;
        torch-nchw) OMP_NUM_THREADS=$THREADS "$torch_py" "$peers/torch_unet.py" --layout nchw --threads "$THREADS" "${shape[@]}" ;;
        torch-cl) OMP_NUM_THREADS=$THREADS "$torch_py" "$peers/torch_unet.py" --layout channels_last --threads "$THREADS" "${shape[@]}" ;;
    esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/^Mem:/ {print $2}') GiB"
    echo "date: $(date -u '+%F %H:%M UTC'), load average $(cut -d' ' -f1 /proc/loadavg) before the run"
    echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- Sources Package.swift 2>/dev/null || echo ' (Sources modified)')"
    echo "ours: ${UNET_BIN:+UNET_BIN=}$unet"
} > "$work/header"
echo "peers: $rounds round(s) of ${configs[*]}; $MODE ${ROWS}x$COLS batch $BATCH filters $FILTERS depth $DEPTH $UPSAMPLE, $THREADS threads, $WARMUP + $steps steps" >&2
if awk '{exit !($1 > 0.5)}' /proc/loadavg; then
    echo "peers: WARNING load average $(cut -d' ' -f1 /proc/loadavg): other processes compete for the cores; PyTorch's OpenMP threads slow down by orders of magnitude when oversubscribed, so its figures (and all ratios) are not meaningful unless the machine is otherwise idle" >&2
fi
n=${#configs[@]}
for round in $(seq "$rounds"); do
    # Each round starts one configuration further on, so none always follows the same neighbour.
    for k in $(seq 0 $((n - 1))); do
        c=${configs[$(((k + round - 1) % n))]}
        start=$SECONDS
        if ! run "$c" > "$work/$c.out" 2> "$work/$c.err"; then
            echo "peers: $c failed in round $round; its output:" >&2
            tail -20 "$work/$c.out" "$work/$c.err" >&2
            exit 1
        fi
        line=$(tail -1 "$work/$c.out")
        case $line in "{"*) echo "$line" >> "$work/$c.jsonl" ;;
            *) echo "peers: $c printed no JSON line; its output:" >&2; tail -20 "$work/$c.out" "$work/$c.err" >&2; exit 1 ;; esac
        cat "$work/$c.err" >> "$work/$c.log"
        echo "peers: round $round/$rounds $c $(python3 -c 'import json,sys; print("%.2f images/s" % json.loads(sys.argv[1])["images_per_s"])' "$line") ($((SECONDS - start)) s)" >&2
    done
done
if [ -n "${PEER_OUT:-}" ]; then mkdir -p "$PEER_OUT"; cp "$work"/*.jsonl "$work"/*.log "$work/header" "$PEER_OUT"/; fi

python3 - "$work" "$MODE" "$THREADS" "$rounds" "$steps" "$WARMUP" "${configs[@]}" <<'PY'
import json, statistics, sys
work, mode, threads, rounds, steps, warmup, *configs = sys.argv[1:]
rows = {c: [json.loads(l) for l in open(f"{work}/{c}.jsonl")] for c in configs}
names = {"ours": f"ours 1x{threads}", "ours-2x1": f"ours {threads}x1 (mpirun)", "tf-default": "TF as installed",
         "tf-onednn": "TF oneDNN", "tf-xla": "TF XLA", "torch-nchw": "PyTorch NCHW", "torch-cl": "PyTorch channels_last"}
med = lambda xs: statistics.median(xs)
ips = {c: [r["images_per_s"] for r in rows[c]] for c in configs}
# Peak RSS of the whole job (ours under mpirun: the sum over its ranks), as each peer's one
# process; the largest rank's beside it.
rss = {c: max(r.get("peak_rss_total_mb", r["peak_rss_mb"]) for r in rows[c]) for c in configs}
rank_rss = {c: max(r["peak_rss_mb"] for r in rows[c]) for c in configs}

def ratio(a, b):
    """Median over rounds of a's images/s over b's in the same round."""
    return med([x / y for x, y in zip(ips[a], ips[b])])

versions = []
for c, keys in (("tf-", ("tensorflow", "keras", "numpy")), ("torch-", ("torch",))):
    r = next((rows[k][0] for k in configs if k.startswith(c)), None)
    if r: versions += [f"{k} {r[k]}" for k in keys]
h = dict(l.rstrip("\n").split(": ", 1) for l in open(f"{work}/header"))
print(f"machine: {h['machine']}; date: {h['date']}; commit {h['commit']}; {', '.join(versions) or 'no peers'}")
s = next(iter(rows.values()))[0]
print(f"{mode} {s['rows']}x{s['cols']}, batch {s['batch_size']}, filters {s['filters']}, depth {s['depth']}, "
      f"{s['upsample']}; {threads} threads; {rounds} rounds x {steps} timed steps after {warmup} warm-up, "
      f"configurations alternated, each its own process; ours: {h['ours']}")
params = {r["params"] for c in configs for r in rows[c][:1] if "params" in r}
if params:
    print(f"parameters (Keras count_params / torch numel): {', '.join(f'{p:,}' for p in sorted(params))}"
          + ("" if len(params) == 1 else "  ** MODELS DIFFER **"))
print()
base = "ours" if "ours" in configs else None
print(f"| configuration | images/s median | min | max | peak RSS MB (job) |" + (" ours / it | RSS it / ours |" if base else ""))
print("|---|---|---|---|---|" + ("---|---|" if base else ""))
for c in configs:
    job = f"{rss[c]:.0f}" + (f" ({rank_rss[c]:.0f} a rank)" if rss[c] != rank_rss[c] else "")
    line = f"| {names[c]} | {med(ips[c]):.2f} | {min(ips[c]):.2f} | {max(ips[c]):.2f} | {job} |"
    if base:
        line += f" {ratio(base, c):.2f}x | {rss[c] / rss[base]:.2f} |"
    print(line)
print()
peers = [c for c in configs if not c.startswith("ours")]
torch = [c for c in peers if c.startswith("torch")]
targets = {"train": (1.25, 1.5), "infer": (1.0, None)}[mode]
for mine in [c for c in configs if c.startswith("ours")]:
    if peers:
        best = max(peers, key=lambda c: med(ips[c]))
        print(f"fastest peer configuration: {names[best]} ({med(ips[best]):.2f} images/s); "
              f"{names[mine]} / it: {ratio(mine, best):.2f}x (issue 5 target: >= {targets[0]}x)")
    if torch:
        bt = max(torch, key=lambda c: med(ips[c]))
        goal = f" (issue 5 target: >= {targets[1]}x)" if targets[1] else ""
        print(f"fastest PyTorch: {names[bt]} ({med(ips[bt]):.2f} images/s); {names[mine]} / it: {ratio(mine, bt):.2f}x{goal}; "
              f"peak RSS {rss[mine]:.0f} MB" + (" (all ranks)" if rss[mine] != rank_rss[mine] else "")
              + f" = {rss[mine] / min(rss[c] for c in torch):.2f} of PyTorch's"
              + (" (target <= 0.5 while training)" if mode == "train" else ""))
print()
for c in configs:
    print(f"{names[c]:24s} per round: " + " ".join(f"{x:.2f}" for x in ips[c]))
PY
