"""``--model timm:NAME``: ``timm.create_model(NAME, pretrained=True, num_classes=0)`` (so
``embed`` is the pooled feature) with timm's own evaluation transform; ``resid.L`` hooks on its
``blocks`` (or ``stages``). Needs ``pip install timm``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models.loaded import LoadedModel
from vsae.models.module import from_module, placed
from vsae.models.registry import Family, LoadRequest, register_family

PYTHON_FORM = "python:package.module:factory"


class TransformPreprocessor:
    """PIL images -> [B, 3, H, W] with a per-image transform (timm's evaluation transform)."""

    def __init__(self, transform: Callable[[Any], torch.Tensor]):
        self.transform = transform

    def __call__(self, images: list) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images])


def load_timm(spec: str) -> LoadedModel:
    """``timm:NAME`` -> a pretrained timm model (classifier head removed) and its transform."""
    name = spec[len("timm:") :].strip()
    if not name:
        raise VsaeError("--model timm:NAME needs a model name, e.g. timm:vit_base_patch16_224")
    try:
        import timm
        import timm.data
    except ImportError:
        raise VsaeError(
            f"--model {spec} needs timm, which is not installed; pip install timm "
            f"(or load the model yourself with {PYTHON_FORM})"
        ) from None
    try:
        model = timm.create_model(name, pretrained=True, num_classes=0)
    except Exception as e:  # unknown name, weights not downloadable offline ...
        raise VsaeError(
            f"timm cannot create {name!r} ({type(e).__name__}: {str(e).splitlines()[0][:160]})"
        ) from None
    cfg = timm.data.resolve_model_data_config(model)
    transform = timm.data.create_transform(**cfg, is_training=False)
    blocks = next(
        (
            b
            for b in ("blocks", "stages")
            if isinstance(getattr(model, b, None), nn.Sequential | nn.ModuleList)
        ),
        None,
    )
    has_cls = getattr(model, "cls_token", None) is not None
    n_prefix = int(getattr(model, "num_prefix_tokens", int(has_cls)) or 0)
    lm = from_module(
        model, TransformPreprocessor(transform), name=spec, blocks=blocks, has_cls=has_cls, n_prefix=n_prefix
    )
    lm.provenance = {**lm.provenance, "timm_model": name, "timm_data_config": _jsonable(cfg)}
    return lm


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in cfg.items()
        if isinstance(v, int | float | str | tuple)
    }


def load(req: LoadRequest) -> LoadedModel:
    """The family's loader: the timm model on the request's device and dtype."""
    return placed(load_timm(req.source), req)


register_family(Family("timm", load, prefix="timm"))
