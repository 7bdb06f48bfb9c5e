#!/usr/bin/env bash
# Create the virtual environment that runs a real ComfyUI with this pack, for the `comfyui` test tier.
#
# It is a venv of its own (not the pack's .venv): ComfyUI's requirements pin things the pack's CI
# does not need, and a broken ComfyUI install must never break the CI tier.
#
# usage: COMFYUI_PATH=/path/to/ComfyUI bash tests/integration/setup_comfyui_env.sh [VENV_DIR]
#   VENV_DIR        default $COMFY_VENV, else ${XDG_CACHE_HOME:-~/.cache}/ip_to_portrait/comfy-venv
#   COMFYUI_PATH    a ComfyUI checkout (its requirements.txt is installed); required
#   PYTHON          interpreter that creates the venv (default python3)
#   I2P_PIP_LOCK    a lock file every pip run holds (default /tmp/i2p-pip.lock; empty = no lock), so
#                   parallel installs on one machine do not fight over pip's cache
#
# torch, torchvision and torchaudio are installed first at fixed versions and then pinned through a
# constraints file for every later pip run, so no requirement (ComfyUI's lists plain `torch`) can make
# pip replace them. PyPI has no CPU build of torchvision, so this takes the published (CUDA) builds,
# which run on CPU. torchaudio stopped following torch's version numbers: 2.11.0 is its newest release
# and is built against torch's stable ABI (abi3, no torch pin), which imports with torch 2.14.
set -euo pipefail

PACK_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:-${COMFY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/ip_to_portrait/comfy-venv}}"
COMFYUI_PATH="${COMFYUI_PATH:-}"
PYTHON="${PYTHON:-python3}"
LOCK="${I2P_PIP_LOCK-/tmp/i2p-pip.lock}"

TORCH_VERSION="${TORCH_VERSION:-2.14.1}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.29.1}"
TORCHAUDIO_VERSION="${TORCHAUDIO_VERSION:-2.11.0}"

if [[ -z "$COMFYUI_PATH" ]]; then
    echo "error: set COMFYUI_PATH to a ComfyUI checkout, e.g. COMFYUI_PATH=/path/to/ComfyUI bash $0" >&2
    exit 2
fi
if [[ ! -f "$COMFYUI_PATH/main.py" || ! -f "$COMFYUI_PATH/requirements.txt" ]]; then
    echo "error: COMFYUI_PATH='$COMFYUI_PATH' is not a ComfyUI checkout (no main.py / requirements.txt)" >&2
    exit 2
fi

pip_run() {
    if [[ -n "$LOCK" ]] && command -v flock >/dev/null; then
        flock "$LOCK" "$VENV/bin/python" -m pip "$@"
    else
        "$VENV/bin/python" -m pip "$@"
    fi
}

start=$(date +%s)
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "== creating venv $VENV"
    "$PYTHON" -m venv "$VENV"
fi

CONSTRAINTS="$VENV/i2p-torch-constraints.txt"
cat >"$CONSTRAINTS" <<EOF
torch==$TORCH_VERSION
torchvision==$TORCHVISION_VERSION
torchaudio==$TORCHAUDIO_VERSION
EOF

echo "== torch $TORCH_VERSION, torchvision $TORCHVISION_VERSION, torchaudio $TORCHAUDIO_VERSION"
pip_run install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
# --no-deps: torchaudio declares no torch requirement anyway; this keeps it that way if a later
# release adds one.
pip_run install -q --no-deps "torchaudio==$TORCHAUDIO_VERSION"

echo "== ComfyUI requirements ($COMFYUI_PATH/requirements.txt)"
pip_run install -q -c "$CONSTRAINTS" -r "$COMFYUI_PATH/requirements.txt"

echo "== pack requirements"
pip_run install -q -c "$CONSTRAINTS" -r "$PACK_ROOT/requirements.txt" -r "$PACK_ROOT/requirements-test.txt"

echo "== checking the environment"
"$VENV/bin/python" - "$TORCH_VERSION" "$TORCHVISION_VERSION" <<'PY'
import sys

import torch
import torchaudio
import torchaudio.functional  # ComfyUI's text encoders import it at module level
import torchvision
from torchvision.ops import nms  # fails with a torchvision built for another torch

want_torch, want_tv = sys.argv[1], sys.argv[2]
got_torch = torch.__version__.split("+")[0]
got_tv = torchvision.__version__.split("+")[0]
if (got_torch, got_tv) != (want_torch, want_tv):
    sys.exit(f"torch/torchvision were replaced: {torch.__version__} / {torchvision.__version__}")
boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
assert nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]
print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, torchaudio {torchaudio.__version__}")
PY
echo "== done in $(( $(date +%s) - start )) s: $VENV"
echo "run the tier with:"
echo "  COMFYUI_PATH=$COMFYUI_PATH $VENV/bin/python -m pytest -m comfyui"
