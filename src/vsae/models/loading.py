"""`vsae.models.load`: a model by Hugging Face hub id, local directory or ``prefix:`` form, through
the family registry (`vsae.models.family_registry`; the built-in families are `vsae.models.families`).

The order: a registered prefix (``python:...``, ``timm:...``); else the Hugging Face config's
`model_type`; else a family that claims a checkpoint without a root config.json (a diffusion
pipeline's text encoder). A hub id that is not in the local cache fails at once when offline
(`vsae.models.hub`).
"""

from __future__ import annotations

from dataclasses import replace

import torch

import vsae.models.families  # noqa: F401  (imports and so registers every built-in family)
from vsae.errors import VsaeError
from vsae.models import family_registry as registry
from vsae.models import hf
from vsae.models.hub import local_files_only
from vsae.models.loaded import LoadedModel, parse_dtype


def load(
    model_id_or_dir: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    tower: str | None = None,
) -> LoadedModel:
    """Load a model by hub id or local directory, or any nn.Module by
    ``python:package.module:factory`` / ``timm:NAME`` (or another registered prefix).

    `tower`: for CLIP checkpoints "vision" (default) or "text"; for LLaVA "vision" (default) or
    "language"; ignored (must be None or match) for single-tower models.
    """
    registry.load_plugins()
    source = str(model_id_or_dir)
    req = registry.LoadRequest(source, device=device, dtype=parse_dtype(dtype), tower=tower)
    family = registry.for_prefix(source)
    if family is not None:
        return family.load(req)
    local_only = local_files_only(source)  # fails at once: not cached and offline
    config, why = hf.load_config(source, local_only)
    if config is None:
        family = registry.for_checkpoint(source, local_only)
        if family is None:
            raise VsaeError(
                f"cannot load model {source!r}: not a model directory with config.json and not in the "
                f"Hugging Face cache ({why}); give a local directory"
            )
        return family.load(replace(req, local_only=local_only))
    family = registry.for_model_type(config.model_type)
    return family.load(replace(req, local_only=local_only, config=config))
