"""`--model` forms for models that are not Hugging Face checkpoints.

- ``python:package.module:factory`` (or ``python:path/to/file.py:factory``): calls
  ``factory()``, which returns a `LoadedModel` (e.g. from `vsae.models.from_module`), or
  ``(module, preprocess)``, or ``(module, preprocess, from_module_kwargs)`` such as
  ``(net, prep, {"blocks": "blocks", "has_cls": True})``. ``preprocess`` is what
  `from_module` documents: a list of PIL images -> a batch tensor or a dict of tensors. The
  package is imported from the current directory or ``PYTHONPATH``.
- ``timm:NAME``: ``timm.create_model(NAME, pretrained=True, num_classes=0)`` (so ``embed`` is
  the pooled feature) with timm's own evaluation transform; ``resid.L`` hooks on its ``blocks``
  (or ``stages``). Needs ``pip install timm``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models.loading import LoadedModel, from_module

PYTHON_FORM = "python:package.module:factory (or python:path/to/file.py:factory)"


def load_custom(
    spec: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    tower: str | None = None,
) -> LoadedModel:
    """Load ``python:...`` or ``timm:...`` (see the module docstring) on `device` in `dtype`."""
    if tower not in (None, "vision"):
        raise VsaeError(f"--tower {tower} applies to CLIP/LLaVA checkpoints, not to {spec}; drop --tower")
    if spec.startswith("python:"):
        lm = load_python(spec)
    elif spec.startswith("timm:"):
        lm = load_timm(spec)
    else:
        raise VsaeError(f"unknown model form {spec!r}; use a hub id, a directory, {PYTHON_FORM} or timm:NAME")
    lm.full_model.to(device=device, dtype=dtype)
    lm.dtype = dtype
    return lm


def _import(module: str) -> Any:
    if module.endswith(".py"):
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise VsaeError(f"python file {path} does not exist; give {PYTHON_FORM}")
        spec = importlib.util.spec_from_file_location(f"vsae_factory_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    if os.getcwd() not in sys.path:  # `vsae` as a console script does not import from the cwd
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise VsaeError(
            f"cannot import {module!r} ({e}); run from its folder or add it to PYTHONPATH ({PYTHON_FORM})"
        ) from None


def load_python(spec: str) -> LoadedModel:
    """``python:package.module:factory`` -> the factory's model, as a LoadedModel."""
    body = spec[len("python:") :]
    module, sep, name = body.rpartition(":")
    if not sep or not module or not name.isidentifier():
        raise VsaeError(f"--model {spec!r}: expected {PYTHON_FORM}")
    mod = _import(module)
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise VsaeError(f"{module} has no function {name!r}; give {PYTHON_FORM}")
    try:
        made = factory()
    except VsaeError:
        raise
    except Exception as e:  # the user's code: one line, not a traceback
        raise VsaeError(
            f"{spec} raised {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        ) from None
    return _as_loaded(made, spec)


def _as_loaded(made: Any, spec: str) -> LoadedModel:
    if isinstance(made, LoadedModel):
        made.provenance = {**made.provenance, "factory": spec}
        return made
    if (
        isinstance(made, tuple)
        and len(made) in (2, 3)
        and isinstance(made[0], nn.Module)
        and callable(made[1])
    ):
        kw = dict(made[2]) if len(made) == 3 else {}
        if not isinstance(kw, dict):
            raise VsaeError(f"{spec}: the third element must be a dict of from_module options")
        kw.setdefault("name", spec)
        try:
            lm = from_module(made[0], made[1], **kw)
        except TypeError as e:
            raise VsaeError(f"{spec}: bad from_module options ({e})") from None
        lm.provenance = {**lm.provenance, "factory": spec}
        return lm
    raise VsaeError(
        f"{spec} returned {type(made).__name__}; it must return a LoadedModel, (module, preprocess) "
        "or (module, preprocess, from_module options)"
    )


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
