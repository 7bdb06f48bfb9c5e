#!/usr/bin/env bash
# One command for a fresh machine: a virtual environment in .venv with torch (only where none is
# importable), the pack's requirements, the queue extra (Celery, redis-py), the test tools, the pack
# itself for `python -m ip_to_portrait`, and (as root, with apt-get) the redis-server the queue tests run.
# --standalone also installs comfy-cli (the [standalone] extra), which `portrait` uses to install a
# private ComfyUI when it finds none.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
# torch and torchvision must be a matched pair: an unpinned torchvision next to a pinned torch makes
# pip replace torch. Override for your CUDA version, e.g. TORCH_SPEC="torch==2.14.1 torchvision==0.29.1".
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
VPY=.venv/bin/python
if ! "$VPY" -c "import torch, torchvision" >/dev/null 2>&1; then
    echo "setup: installing $TORCH_SPEC"
    # shellcheck disable=SC2086
    "$VPY" -m pip install --progress-bar off $TORCH_SPEC
fi
"$VPY" -m pip install --progress-bar off -r requirements.txt -r requirements-queue.txt -r requirements-test.txt
"$VPY" -m pip install --progress-bar off --no-deps --no-build-isolation -e .
if [ "${1:-}" = "--standalone" ]; then
    "$VPY" -m pip install --progress-bar off --no-build-isolation -e ".[standalone]"
fi
if ! command -v redis-server >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing redis-server (Debian package) for the queue tests"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
            || echo "setup: could not install redis-server: the queue tests will be skipped"
    else
        echo "setup: no redis-server: the queue tests will be skipped (install it: apt-get install redis-server)"
    fi
fi
"$VPY" -c "import celery, redis; print('setup: queue extra ok, celery', celery.__version__)"
"$VPY" -c "import torch, torchvision, onnxruntime, insightface; print('setup: ok, torch', torch.__version__, '| onnxruntime providers', onnxruntime.get_available_providers())"
