#!/usr/bin/env bash
# Accuracy parity of `unet train` with the Keras reference (issue 3, Docs/ACCURACY.md): one
# synthetic set, then for each seed both trainers side by side (one thread each), and a table of
# the validation Kaggle score of each run's best epoch (by validation loss, as the checkpoint
# keeps) with the medians per trainer.
#   Launch/reference/parity.sh WORK [EPOCHS] [LR] [SEEDS...]
# Needs the Keras environment (PYTHON, default /work/.venv-keras/bin/python; see
# Tests/UNetTrainerTests/Fixtures/keras/README.md). Long: about 2 minutes per epoch per trainer.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:?usage: parity.sh WORK [EPOCHS] [LR] [SEEDS...]}
epochs=${2:-20}
lr=${3:-1e-4}
shift $(( $# < 3 ? $# : 3 ))
if [ $# -gt 0 ]; then seeds=("$@"); else seeds=(1 2 3); fi
python=${PYTHON:-/work/.venv-keras/bin/python}
swift build -c release >/dev/null
unet="$(swift build -c release --show-bin-path)/unet"
mkdir -p "$work"
[ -d "$work/raw" ] || "$unet" synth --out "$work/raw" --train 1000 --test 100 --subjects "${SUBJECTS:-20}" --seed 7
[ -d "$work/data" ] || "$unet" prepare --raw "$work/raw" --out "$work/data" >/dev/null
for seed in "${seeds[@]}"; do
    OPENBLAS_NUM_THREADS=1 "$unet" train --data "$work/data" --checkpoint "$work/ours-$seed.h5" \
        --epochs "$epochs" --lr "$lr" --seed "$seed" > "$work/ours-$seed.log" 2>&1 &
    "$python" Launch/reference/keras_train.py --data "$work/data" --epochs "$epochs" --lr "$lr" \
        --seed "$seed" --threads 1 --out "$work/keras-$seed.h5" --log "$work/keras-$seed.csv" > "$work/keras-$seed.log" 2>&1 &
    wait
done
python3 - "$work" "${seeds[@]}" <<'PY'
import csv, re, statistics, sys
work, seeds = sys.argv[1], sys.argv[2:]
def best(rows):  # rows: (val_loss, val_kaggle); the best epoch by validation loss
    return min(rows)[1]
ours, keras = [], []
for s in seeds:
    rows = [(float(m[1]), float(m[2])) for m in re.finditer(r"val_loss (\S+)\s+val_dice \S+\s+val_kaggle (\S+)", open(f"{work}/ours-{s}.log").read())]
    ours.append(best(rows))
    keras.append(best([(float(r["val_loss"]), float(r["val_kaggle"])) for r in csv.DictReader(open(f"{work}/keras-{s}.csv"))]))
    print(f"seed {s}: val_kaggle at best val_loss  ours {ours[-1]:.4f}  keras {keras[-1]:.4f}")
print(f"median: ours {statistics.median(ours):.4f}  keras {statistics.median(keras):.4f}  difference {statistics.median(ours) - statistics.median(keras):+.4f}")
PY
