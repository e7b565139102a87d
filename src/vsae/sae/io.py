"""Build, save and load SAEs (``sae.safetensors`` + ``config.json``, :mod:`vsae.sae.files`; SAELens
directories through :mod:`vsae.sae.saelens`), and scale folding.

This module does not import :mod:`vsae.sae.base` (whose ``SAE.from_pretrained`` uses it), so SAEs
are typed ``Any`` here: each is a :class:`vsae.sae.base.SAE` of the registered class of its
``cfg.arch`` (:mod:`vsae.sae.registry`)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vsae.errors import VsaeError, regular_file
from vsae.sae.config import SAEConfig
from vsae.sae.files import (
    CONFIG,
    FORMAT,
    VERSION,
    WEIGHTS,
    read_config,
    resolve,
    resolve_pretrained,
    save_tensors_atomic,
    write_json_atomic,
)
from vsae.sae.registry import get_arch
from vsae.sae.saelens import is_saelens_dir, load_saelens

__all__ = [
    "CONFIG",
    "FORMAT",
    "VERSION",
    "WEIGHTS",
    "build",
    "fold_scale",
    "load",
    "read_config",
    "resolve",
    "resolve_pretrained",
    "save",
    "save_tensors_atomic",
    "write_json_atomic",
]


def build(cfg: SAEConfig, seed: int | None = None) -> Any:
    """A freshly initialised SAE of ``cfg.arch`` (deterministic given ``seed``)."""
    sae = get_arch(cfg.arch).cls(cfg)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    sae.reset_parameters(gen)
    return sae


@torch.no_grad()
def fold_scale(sae: Any, scale: float) -> Any:
    """A copy of an SAE trained on ``x * scale`` that works on raw ``x``.

    Pre-activations, latents, biases and thresholds are divided by ``scale`` (each
    architecture's :meth:`SAE.fold_scale_`); the decoder rows keep unit norm, so latents come
    out in the input's original units.
    """
    out = copy.deepcopy(sae)
    if scale != 1.0:
        out.fold_scale_(scale)
    return out


def save(sae: Any, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``sae.safetensors`` and ``config.json`` into ``directory`` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(dict(sae.state_dict()), d / WEIGHTS, metadata={"format": FORMAT})
    meta = {"format": FORMAT, "version": VERSION, "cfg": sae.cfg.to_json()}
    if extra:
        meta.update(extra)
    write_json_atomic(d / CONFIG, meta)
    return d


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> Any:
    """Load an SAE saved by :func:`save` (a run directory or its sae.safetensors), or import a
    SAELens directory (``cfg.json`` + ``sae_weights.safetensors``; :mod:`vsae.sae.saelens`)."""
    p = Path(path).parent if Path(path).is_file() else Path(path)
    if not (p / CONFIG).is_file() and is_saelens_dir(p):
        sae = load_saelens(p)
        check_finite_params(sae, p)
        return sae.to(device)
    d = resolve(path)
    meta = read_config(d)
    try:
        cfg = SAEConfig.from_json(meta["cfg"])
    except (KeyError, TypeError) as e:
        raise VsaeError(f"{d / CONFIG} has no valid 'cfg' ({e}); the checkpoint is damaged") from None
    sae = get_arch(cfg.arch).cls(cfg)
    regular_file(d / WEIGHTS, "SAE weights", "the checkpoint is damaged: retrain or copy it again")
    try:
        state = load_file(str(d / WEIGHTS), device="cpu")
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise VsaeError(
            f"cannot read {d / WEIGHTS} as safetensors ({str(e).splitlines()[0]}); the checkpoint is damaged"
        ) from None
    try:
        sae.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise VsaeError(f"{d / WEIGHTS} does not match its config ({str(e).splitlines()[0]})") from None
    check_finite_params(sae, d / WEIGHTS)
    return sae.to(device).eval()


def check_finite_params(sae: Any, where: Path) -> None:
    """One line naming the first parameter of ``sae`` (read from ``where``) holding NaN or Inf."""
    for name, t in sae.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise VsaeError(
                f"SAE weights {where}: {name} holds NaN or Inf; the checkpoint is damaged: "
                "use an earlier checkpoint or retrain"
            )
