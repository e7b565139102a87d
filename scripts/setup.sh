#!/usr/bin/env bash
# Creates .venv and installs vsae with its test tools, CPU torch first (pinned), never torchvision.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
# Debian packages: WordNet 3.0 (ImageNet hierarchies) and Chromium (the report's render test).
need=()
for pkg in wordnet-base chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: Debian packages ${need[*]} are missing (need root to install); the tests that use them will fail" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
# torch must come first and pinned, so that nothing resolves an unpinned (CUDA) build.
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -m pip install -q -e ".[dev,serve,data]" 2>&1 | grep -v "is ignored" || true
# Optional: VSAE_TIMM=1 adds timm (and the torchvision built for the pinned torch, which
# `import timm` needs) for `--model timm:NAME`, with torch held at its pin (docs/extract.md).
if [ "${VSAE_TIMM:-0}" = 1 ]; then
  echo "torch==2.13.0" > .venv/torch-pin.txt
  .venv/bin/python -m pip install -q -e ".[timm]" -c .venv/torch-pin.txt 2>&1 | grep -v "is ignored" || true
fi
.venv/bin/python -c "import torch, transformers, vsae; print('vsae', vsae.__version__, 'torch', torch.__version__)"
