"""``--model timm:NAME`` (pretrained weights from the Hugging Face hub or its cache) or
``--model timm:NAME:WEIGHTS`` (local weights: a ``.safetensors`` file, or a PyTorch checkpoint
``.pth`` / ``.pt`` / ``.bin`` read with ``torch.load(weights_only=True)``): a timm model with its
classifier head removed (``num_classes=0``, so ``embed`` is the pooled feature) and timm's own
evaluation transform; ``resid.L`` hooks on its ``blocks`` (or ``stages``).

Needs timm (and the torchvision it imports), not a vsae dependency: docs/extract.md installs
them without changing the pinned torch. Errors are one line: the module that is really missing
when ``import timm`` fails, an unknown model, weights that do not fit, and -- offline
(``HF_HUB_OFFLINE`` or no connection to the hub, `vsae.models.hub`) -- pretrained weights that
are not in the local cache, at once, before timm retries the network."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models import hub
from vsae.models.family_registry import Family, LoadRequest, register_family
from vsae.models.loaded import LoadedModel
from vsae.models.module import from_module, placed

PYTHON_FORM = "python:package.module:factory"
TIMM_FORM = "timm:NAME (hub weights) or timm:NAME:path/to/weights.safetensors (local weights)"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin")
# the files timm's hub loader looks for in a `timm/<name>` repository, in its order
HUB_WEIGHT_FILES = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")


class TransformPreprocessor:
    """PIL images -> [B, 3, H, W] with a per-image transform (timm's evaluation transform)."""

    def __init__(self, transform: Callable[[Any], torch.Tensor]):
        self.transform = transform

    def __call__(self, images: list) -> torch.Tensor:
        return torch.stack([self.transform(im) for im in images])


def parse_spec(spec: str) -> tuple[str, Path | None]:
    """``timm:NAME[:WEIGHTS]`` -> (NAME, the weights file or None)."""
    name, _, weights = spec[len("timm:") :].strip().partition(":")
    name = name.strip()
    if not name:
        raise VsaeError(f"--model timm:NAME needs a model name, e.g. timm:vit_base_patch16_224 ({TIMM_FORM})")
    if not weights.strip():
        return name, None
    path = Path(weights.strip()).expanduser()
    if not path.is_file():
        raise VsaeError(f"--model {spec}: weights file {path} does not exist; give {TIMM_FORM}")
    if path.suffix != ".safetensors" and path.suffix not in CHECKPOINT_SUFFIXES:
        raise VsaeError(
            f"--model {spec}: {path.name} is neither .safetensors nor a PyTorch checkpoint "
            f"({', '.join(CHECKPOINT_SUFFIXES)}); give {TIMM_FORM}"
        )
    return name, path


def import_timm(spec: str) -> ModuleType:
    """``import timm`` (and ``timm.data``), or one line naming what is really missing."""
    try:
        import timm  # optional dependency: imported only for this family
        import timm.data  # noqa: F401
    except ImportError as e:
        missing = e.name or ""
        if missing == "timm" or (not missing and "timm" in str(e) and "torchvision" not in str(e)):
            raise VsaeError(
                f"--model {spec} needs timm, which is not installed; install it as docs/extract.md "
                f"shows (it keeps the pinned torch), or load the model yourself with {PYTHON_FORM}"
            ) from None
        what = repr(missing) if missing else str(e).splitlines()[0][:160]
        raise VsaeError(
            f"--model {spec}: timm is installed but importing it failed: it needs {what}, which is not "
            f"installed (timm imports torchvision); install it as docs/extract.md shows "
            f"(matching the installed torch), or use {PYTHON_FORM}"
        ) from None
    except Exception as e:  # e.g. a torchvision built for another torch: one line, the real cause
        why = (str(e).splitlines() or [""])[0][:160]
        raise VsaeError(
            f"--model {spec}: importing timm failed ({type(e).__name__}: {why}); check that timm's "
            "torchvision matches the installed torch (docs/extract.md)"
        ) from None
    return timm


def hub_repo(timm: ModuleType, name: str) -> str | None:
    """The Hugging Face repository timm would download ``name``'s pretrained weights from."""
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # an unknown name or an older timm: no repository known
        return None
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    return str(repo) if repo else None


def _cached(repo: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return any(isinstance(try_to_load_from_cache(repo, f), str) for f in HUB_WEIGHT_FILES)
    except Exception:  # a repository id the hub library refuses is not cached
        return False


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Within the block huggingface_hub serves its cache alone (no connection attempts)."""
    from huggingface_hub import constants  # installed with transformers

    old_env, old = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def pretrained_context(timm: ModuleType, spec: str, name: str) -> contextlib.AbstractContextManager[None]:
    """Online: no change. Offline (HF_HUB_OFFLINE, or the hub's host unreachable): the cached
    weights alone, or at once a one-line error when they are not cached."""
    if not hub.offline_env() and hub.hub_reachable():
        return contextlib.nullcontext()
    repo = hub_repo(timm, name)
    if repo is not None and _cached(repo):
        return _hub_offline()
    why = "HF_HUB_OFFLINE is set" if hub.offline_env() else f"{hub.endpoint()[0]} is unreachable (no network)"
    where = f"{repo} is not in the Hugging Face cache" if repo else "timm knows no hub weights for it"
    raise VsaeError(
        f"cannot load {spec}'s pretrained weights: {where}, and {why}; give local weights "
        f"(timm:{name}:path/to/weights.safetensors) or download them where there is network"
    )


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a .safetensors file or a PyTorch checkpoint (tensors only, weights_only)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file, a pickle with objects: one line
        why = (str(e).splitlines() or [""])[0][:160]
        raise VsaeError(
            f"cannot read weights {path} ({type(e).__name__}: {why}); give a state dict file"
        ) from None
    for key in ("state_dict", "model", "state_dict_ema"):  # training checkpoints nest the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VsaeError(f"{path} holds no state dict of tensors; save model.state_dict()")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_local_weights(model: nn.Module, path: Path, spec: str) -> None:
    """Load ``path`` into the headless ``model``; the classifier's weights in the file (any
    number of classes) are dropped, every other tensor must fit."""
    state = read_weights(path)
    head = str((getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "")
    heads = tuple(h for h in (head, "classifier", "head", "fc") if h)
    state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{h}." for h in heads))}
    try:
        res = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise VsaeError(
            f"{path} does not fit {spec} ({str(e).splitlines()[-1].strip()[:200]}); give the weights of this architecture"
        ) from None
    if res.missing_keys or res.unexpected_keys:
        raise VsaeError(
            f"{path} does not fit {spec}: missing {res.missing_keys[:3]}, unexpected "
            f"{res.unexpected_keys[:3]}; give the weights of this architecture"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_timm(spec: str) -> LoadedModel:
    """``timm:NAME[:WEIGHTS]`` -> a timm model (classifier head removed) and its transform."""
    name, weights = parse_spec(spec)
    timm = import_timm(spec)
    context = contextlib.nullcontext() if weights is not None else pretrained_context(timm, spec, name)
    try:
        with context:
            model = timm.create_model(name, pretrained=weights is None, num_classes=0)
    except Exception as e:  # unknown name, weights not downloadable ...
        raise VsaeError(
            f"timm cannot create {name!r} ({type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]})"
        ) from None
    if weights is not None:
        load_local_weights(model, weights, spec)
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
    extra: dict[str, Any] = {"timm_model": name, "timm_data_config": _jsonable(cfg)}
    if weights is not None:
        extra["weights_file"] = str(weights.resolve())
        extra["weights_file_sha256"] = _sha256(weights)
    lm.provenance = {**lm.provenance, **extra}
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
