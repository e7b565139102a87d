#!/usr/bin/env bash
# Creates bench/.venv: a separate virtualenv with the peer SAE libraries for bench/train.py.
# The peers are never project dependencies. torch is pinned first so pip never resolves another.
# Peers are installed without their dependency trees (dictionary_learning pulls nnsight, which
# pulls a CUDA torch stack); their light import-time needs are installed explicitly and
# bench/train.py stubs the few modules that cannot be installed here (it says so in its output).
# overcomplete 0.3.0 calls matplotlib.cm.get_cmap at import, removed in matplotlib 3.9: pinned below.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv bench/.venv
PIP="bench/.venv/bin/pip"
$PIP install -q --upgrade pip
$PIP install -q torch==2.13.0
$PIP install -q --no-deps dictionary-learning==0.1.0 overcomplete==0.3.0
# saev: for tests/sae/peers/make_fixtures.py (the importer fixtures); its typing deps are light
$PIP install -q --no-deps saev==0.1.0 beartype jaxtyping wadler_lindig
$PIP install -q einops numpy tqdm safetensors click scipy scikit-learn "matplotlib<3.9" opt_einsum pillow scikit-image opencv-python-headless
$PIP install -q --no-deps -e .
bench/.venv/bin/python -c "import torch; print('bench venv ready: torch', torch.__version__)"
