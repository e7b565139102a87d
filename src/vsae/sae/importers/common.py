"""What the importers share: reading JSON, ``.pt`` state dicts (``torch.load(weights_only=True)``,
the only place in vsae that reads a ``.pt``), safetensors, and building the vsae SAE."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vsae.errors import VsaeError
from vsae.sae.sae_config import SAEConfig
from vsae.sae.saelens import fill_sae


def read_json(path: Path, fmt: str) -> dict[str, Any]:
    """A JSON object from ``path``, or a one-line error naming the format expected."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VsaeError(f"cannot read {path} as the JSON config of a {fmt} SAE ({e})") from None
    if not isinstance(obj, dict):
        raise VsaeError(f"{path} is not a JSON object; not a {fmt} SAE config")
    return obj


def json_or_none(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, None if it is missing or not one (for ``detect``)."""
    try:
        obj = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def load_pt(source: Path | bytes, fmt: str, name: str | None = None) -> dict[str, torch.Tensor]:
    """A tensor state dict from a ``.pt`` file (or its bytes), read with
    ``torch.load(weights_only=True)``: no code in the file runs."""
    where = name or str(source)
    try:
        obj = torch.load(
            io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu", weights_only=True
        )
    except Exception as e:  # noqa: BLE001  (torch raises many kinds for a file that is not a state dict)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise VsaeError(f"cannot read {where} as a {fmt} state dict ({first[:160]})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VsaeError(f"{where} is not a tensor state dict; not a {fmt} SAE")
    return obj


def load_safetensors(path: Path, fmt: str) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as e:
        raise VsaeError(
            f"cannot read {path} as the safetensors of a {fmt} SAE ({str(e).splitlines()[0]})"
        ) from None


def need(state: dict[str, torch.Tensor], keys: list[str], where: Path, fmt: str) -> list[torch.Tensor]:
    """``state[k]`` (float32) for each key, or a one-line error naming the missing ones."""
    missing = [k for k in keys if k not in state]
    if missing:
        raise VsaeError(f"{where} lacks {missing}; not a {fmt} SAE (keys: {sorted(state)[:8]})")
    return [state[k].float() for k in keys]


def build(
    cfg: SAEConfig,
    W_enc_Fd: torch.Tensor,
    b_enc_F: torch.Tensor,
    W_dec_Fd: torch.Tensor,
    b_dec_d: torch.Tensor,
    where: Path,
    fmt: str,
    threshold: torch.Tensor | None = None,
) -> Any:
    """The vsae ``cfg.arch`` SAE holding these vsae-layout weights (shapes checked)."""
    F, d = cfg.d_sae, cfg.d_in
    shapes = {
        "encoder": (tuple(W_enc_Fd.shape), (F, d)),
        "encoder bias": (tuple(b_enc_F.shape), (F,)),
        "decoder": (tuple(W_dec_Fd.shape), (F, d)),
        "decoder bias": (tuple(b_dec_d.shape), (d,)),
    }
    bad = [f"{k} {got} != {want}" for k, (got, want) in shapes.items() if got != want]
    if bad:
        raise VsaeError(f"{where} has inconsistent shapes ({'; '.join(bad)}); not a valid {fmt} SAE")
    return fill_sae(cfg, W_enc_Fd, b_enc_F, W_dec_Fd, b_dec_d, threshold)


def provenance(fmt: str, model: Any = None, hook: Any = None, **extra: Any) -> dict[str, Any]:
    """The provenance of an imported SAE: its format, and the model / the source's own hook name
    (``source_hook``: the library's name, e.g. ``blocks.9.hook_mlp_out``, not a vsae hook) when
    the source names them."""
    out: dict[str, Any] = {"imported_from": fmt}
    if model:
        out["model"] = str(model)
    if hook is not None and hook != "":
        out["source_hook"] = str(hook)
    return out | {k: v for k, v in extra.items() if v is not None}
