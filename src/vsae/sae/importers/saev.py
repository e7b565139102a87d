"""saev (osu-nlp-group/saev): one checkpoint file (``sae.pt``), written by ``saev.nn.dump``: a line
of JSON (the ``SparseAutoencoder`` config: ``d_vit``, ``exp_factor``, ``seed`` ...), then a torch
state dict with ``W_enc`` [d_vit, d_sae], ``b_enc``, ``W_dec`` [d_sae, d_vit], ``b_dec``.

Inference rule (``SparseAutoencoder.forward``): f = relu((x - b_dec) @ W_enc + b_enc); vsae folds
``- b_dec`` into the encoder bias. A directory is accepted when it holds one ``sae.pt``.
"""

from __future__ import annotations

import json
from pathlib import Path

from vsae.errors import VsaeError
from vsae.sae.importers.common import build, load_pt, need, provenance
from vsae.sae.importers.registry import Imported, register_importer
from vsae.sae.sae_config import SAEConfig

NAME = "saev"
FILE = "sae.pt"
_MAX_HEADER = 1 << 16


def _file(path: Path) -> Path:
    return path / FILE if path.is_dir() else path


def _header(path: Path) -> tuple[dict, int] | None:
    """The JSON config line and its length in bytes (None: the file does not start with one)."""
    try:
        with open(path, "rb") as f:
            line = f.readline(_MAX_HEADER)
    except OSError:
        return None
    if not line.startswith(b"{"):
        return None
    try:
        cfg = json.loads(line.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return (cfg, len(line)) if isinstance(cfg, dict) and "d_vit" in cfg else None


@register_importer(NAME, f"{FILE}: a JSON config line with d_vit, then a torch state dict")
class Saev:
    @staticmethod
    def detect(path: Path) -> bool:
        f = _file(path)
        return f.is_file() and _header(f) is not None

    @staticmethod
    def load(path: Path) -> Imported:
        f = _file(path)
        head = _header(f) if f.is_file() else None
        if head is None:
            raise VsaeError(f"{f} is not a saev checkpoint (a JSON line with d_vit, then a torch state dict)")
        cfg_json, n = head
        state = load_pt(f.read_bytes()[n:], NAME, str(f))
        W_dF, b, W_dec_Fd, b_dec = need(state, ["W_enc", "b_enc", "W_dec", "b_dec"], f, NAME)
        W = W_dF.T
        act = cfg_json.get("activation", "relu")
        if act not in ("relu", None):
            raise VsaeError(f"{f}: saev activation {act!r} is not supported; vsae imports relu saev SAEs")
        cfg = SAEConfig(
            arch="relu",
            d_in=W.shape[1],
            d_sae=W.shape[0],
            provenance=provenance(NAME, seed=cfg_json.get("seed")),
        )
        return Imported(build(cfg, W, b - W @ b_dec, W_dec_Fd, b_dec, f, NAME), NAME, [f], cfg_json)
