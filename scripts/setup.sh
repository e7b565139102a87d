#!/usr/bin/env bash
# Creates .venv and installs vsae with its test tools, CPU torch first (pinned), never torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
# torch must come first and pinned, so that nothing resolves an unpinned (CUDA) build.
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[dev,wordnet]" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, transformers, vsae; print('vsae', vsae.__version__, 'torch', torch.__version__)"
