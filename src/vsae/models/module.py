"""Wrap any nn.Module with its preprocessing as a `LoadedModel` (family "module")."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models.family_registry import LoadRequest
from vsae.models.loaded import Blocks, Inputs, LoadedModel


def from_module(
    model: nn.Module,
    preprocess: Callable[[list], Inputs],
    *,
    name: str = "custom",
    blocks: str | Blocks | None = None,
    attn: tuple[str, ...] = ("self_attn", "attn", "attention"),
    mlp: tuple[str, ...] = ("mlp",),
    has_cls: bool = False,
    n_prefix: int | None = None,
    modality: str = "image",
) -> LoadedModel:
    """Wrap any nn.Module with its preprocessing.

    `preprocess(images)` takes a list of PIL RGB images (strings for ``modality="text"``) and
    returns the model's input for the whole batch: a tensor (the model is called as
    ``model(x)``, e.g. [B, 3, H, W] float pixels) or a dict of tensors (called as
    ``model(**inputs)``), batch first. Floating tensors are moved to the model's device and dtype.

    `blocks`: the transformer (or CNN) blocks, in order: a dotted path to an indexable container
    in `model` (nn.ModuleList, nn.Sequential), or the container / a list of modules itself;
    enables resid/attn/mlp hooks. Otherwise only `module:<path>` and `embed` (the model's
    output) are available. Provenance records `name` and a sha256 of the parameters.
    """
    model.eval()
    block_list = _block_container(model, blocks) if blocks is not None else None
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    p = next(model.parameters(), None)
    return LoadedModel(
        model,
        preprocess,
        family="module",
        tower="module",
        modality=modality,
        blocks=block_list,
        sublayer_names={"attn": attn, "mlp": mlp},
        embed_fields=(),
        has_cls=has_cls,
        n_prefix=int(has_cls) if n_prefix is None else n_prefix,
        provenance={
            "model": name,
            "family": "module",
            "class": type(model).__name__,
            "weights_sha256": h.hexdigest(),
        },
        dtype=p.dtype if p is not None else torch.float32,
    )


def _block_container(model: nn.Module, blocks: str | Blocks) -> Blocks:
    """The blocks as an indexable sequence of modules (ModuleList, Sequential, list, tuple)."""
    found: Any = blocks
    if isinstance(blocks, str):
        try:
            found = model.get_submodule(blocks)
        except AttributeError:
            found = None
    ok = isinstance(found, nn.ModuleList | nn.Sequential | list | tuple) and len(found) > 0
    if not ok or not all(isinstance(b, nn.Module) for b in found):
        where = (
            f"{blocks!r} in {type(model).__name__}"
            if isinstance(blocks, str)
            else f"a {type(blocks).__name__}"
        )
        raise VsaeError(
            f"{where} is not an indexable container of blocks (nn.ModuleList, nn.Sequential or a list "
            "of modules); pass the dotted path of the blocks, e.g. blocks='blocks'"
        )
    return nn.ModuleList(found) if isinstance(found, list | tuple) else found


def placed(lm: LoadedModel, req: LoadRequest) -> LoadedModel:
    """A wrapped module moved to the request's device and dtype (wrapped modules have one tower)."""
    if req.tower not in (None, "vision"):
        raise VsaeError(
            f"--tower {req.tower} applies to CLIP/LLaVA checkpoints, not to {req.source}; drop --tower"
        )
    dtype = req.dtype or torch.float32
    lm.full_model.to(device=req.device, dtype=dtype)
    lm.dtype = dtype
    return lm
