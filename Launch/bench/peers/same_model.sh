#!/usr/bin/env bash
# Checks that the PyTorch peer's model is the Keras reference's, weight for weight (same_model.py),
# for both upsampling modes, in the venvs peers.sh made (run peers.sh once first, or set
# PEER_TF_PYTHON / PEER_TORCH_PYTHON). Small by default; e.g. ROWS=64 COLS=80 FILTERS=32 DEPTH=4.
set -euo pipefail
here=$(dirname "$0")
venvs=${PEER_VENV_DIR:-/tmp/unet-peer-venvs}
tf_py=${PEER_TF_PYTHON:-$venvs/tf/bin/python}
torch_py=${PEER_TORCH_PYTHON:-$venvs/torch/bin/python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for up in nearest transpose; do
    "$tf_py" "$here/same_model.py" keras "$work/$up.npz" --upsample "$up" \
        --rows "${ROWS:-32}" --cols "${COLS:-32}" --filters "${FILTERS:-4}" --depth "${DEPTH:-2}" 2>/dev/null
    "$torch_py" "$here/same_model.py" torch "$work/$up.npz"
done
