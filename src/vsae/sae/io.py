"""Build, save and load SAEs (``sae.safetensors`` + ``config.json``, :mod:`vsae.sae.files`; SAELens
directories through :mod:`vsae.sae.saelens`), and scale folding.

This module does not import :mod:`vsae.sae.base` (whose ``SAE.from_pretrained`` uses it), so SAEs
are typed ``Any`` here: each is a :class:`vsae.sae.base.SAE` of the registered class of its
``cfg.arch`` (:mod:`vsae.sae.arch_registry`)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vsae.errors import VsaeError, regular_file
from vsae.sae.arch_registry import get_arch
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
from vsae.sae.importers.registry import find_importer, layouts
from vsae.sae.pretrained import find as find_known
from vsae.sae.sae_config import SAEConfig

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


def is_vsae_dir(directory: Path) -> bool:
    """Whether ``directory`` holds a vsae checkpoint's config.json (not another library's)."""
    try:
        meta = json.loads((directory / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def with_known(sae: Any, name: str | os.PathLike) -> Any:
    """``sae`` with the model and vsae hook name of the known SAE ``name`` (:mod:`vsae.sae.pretrained`)
    in its provenance, when ``name`` is one (not a local path); else ``sae`` unchanged."""
    known = find_known(str(name)) if not Path(name).exists() else None
    if known is not None:
        extra = {"model": known.model, "hook": known.hook, "known_name": known.name}
        prov = {**sae.cfg.provenance, **{k: v for k, v in extra.items() if v}}
        sae.cfg = sae.cfg.replace(provenance=prov)
    return sae


def load(path: str | os.PathLike, device: str | torch.device = "cpu", revision: str | None = None) -> Any:
    """Load an SAE: a vsae run directory (or its sae.safetensors; what :func:`save` writes), any
    checkpoint another library writes (:mod:`vsae.sae.importers`: SAELens, dictionary_learning,
    sparsify, saev, overcomplete, ViT-Prisma), a known public SAE (``release/name``) or a hub id
    ``org/repo[/subfolder][@revision]`` holding either. Every ``--sae`` of the CLI comes here."""
    p = resolve_pretrained(path, revision=revision)
    d = p.parent if p.is_file() else p
    if not is_vsae_dir(d):
        fmt = find_importer(p)
        if fmt is not None:
            sae = fmt.load(p).sae
            check_finite_params(sae, p)
            return with_known(sae, path).to(device)
        if not (d / CONFIG).is_file() and not any((q / CONFIG).is_file() for q in _subdirs(d)):
            raise VsaeError(f"{p} is not a vsae SAE nor one vsae can import; {layouts()}")
    d = resolve(p)
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


def _subdirs(d: Path) -> list[Path]:
    return sorted(q for q in d.iterdir() if q.is_dir()) if d.is_dir() else []


def check_finite_params(sae: Any, where: Path) -> None:
    """One line naming the first parameter of ``sae`` (read from ``where``) holding NaN or Inf."""
    for name, t in sae.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise VsaeError(
                f"SAE weights {where}: {name} holds NaN or Inf; the checkpoint is damaged: "
                "use an earlier checkpoint or retrain"
            )
