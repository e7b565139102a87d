"""One training recipe (steps, batch size, learning rate, seed, warm-up, weight decay), declared
once and nested in every config that trains a model outside `vsae train`: the world's models
(tiny CLIP, similarity encoder, tiny LLaVA, diffusion UNet) and the world's SAEs (the LLaVA's
steering SAE, the diffusion text SAE). Torch-free.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, TypeVar

from vsae.errors import VsaeError

C = TypeVar("C")


@dataclass(frozen=True)
class TrainRecipe:
    """How one model is trained.

    Attributes
    ----------
    steps: optimizer steps (one batch each).
    batch_size: rows (images, captions, token rows) per step.
    lr: peak learning rate.
    seed: seeds the initialisation and the data order.
    warmup: steps of linear learning-rate warm-up (world models: then cosine decay to 0).
    weight_decay: AdamW's decoupled weight decay (world models).
    """

    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    warmup: int = 0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.warmup < 0 or self.seed < 0:
            raise VsaeError(
                f"a training recipe needs steps >= 1, batch_size >= 1, warmup >= 0 and seed >= 0 "
                f"(got {self.steps}, {self.batch_size}, {self.warmup}, {self.seed})"
            )
        if not (math.isfinite(self.lr) and self.lr > 0) or not self.weight_decay >= 0:
            raise VsaeError(
                f"a training recipe needs lr > 0 and weight_decay >= 0 (got {self.lr}, {self.weight_decay})"
            )


def with_recipe(cfg: C, **changes: Any) -> C:
    """``cfg`` (a config with a ``recipe``) with those fields of its recipe replaced."""
    return dataclasses.replace(cfg, recipe=dataclasses.replace(cfg.recipe, **changes))  # type: ignore[attr-defined, type-var]
