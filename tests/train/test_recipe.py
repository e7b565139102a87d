"""One TrainRecipe (steps, batch size, lr, seed, warm-up, weight decay) declared once and nested in
the world's training configs, which no longer declare those fields themselves (issue 24)."""

from __future__ import annotations

import dataclasses

import pytest

from vsae.errors import VsaeError
from vsae.train.recipe import TrainRecipe, with_recipe

RECIPE_FIELDS = {f.name for f in dataclasses.fields(TrainRecipe)}


def _world_configs() -> list[type]:
    from vsae.world.diffusion.t2i_train import DiffusionTrainConfig
    from vsae.world.diffusion.text_sae import TextSAEConfig
    from vsae.world.llava.llava_train import LlavaTrainConfig
    from vsae.world.llava.steering_sae import SteeringSAEConfig
    from vsae.world.train_clip import ClipConfig
    from vsae.world.train_simenc import SimEncConfig

    return [
        ClipConfig,
        SimEncConfig,
        LlavaTrainConfig,
        DiffusionTrainConfig,
        SteeringSAEConfig,
        TextSAEConfig,
    ]


@pytest.mark.parametrize("cls", _world_configs(), ids=lambda c: c.__name__)
def test_world_configs_nest_the_one_recipe(cls):
    cfg = cls()
    assert isinstance(cfg.recipe, TrainRecipe)
    assert not RECIPE_FIELDS & {f.name for f in dataclasses.fields(cls)}  # declared once, not again
    fewer = with_recipe(cfg, steps=3)
    assert fewer.recipe.steps == 3 and fewer.recipe.lr == cfg.recipe.lr and type(fewer) is cls


def test_the_shipped_recipes_are_the_values_the_world_was_built_with():
    from vsae.world.train_clip import ClipConfig
    from vsae.world.train_simenc import SimEncConfig

    assert ClipConfig().recipe == TrainRecipe(2500, 128, 2e-3, seed=0, warmup=100, weight_decay=0.05)
    assert SimEncConfig().recipe == TrainRecipe(2000, 128, 2e-3, seed=1, warmup=50, weight_decay=0.05)


@pytest.mark.parametrize(
    "kw",
    [
        {"steps": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"lr": float("nan")},
        {"warmup": -1},
        {"weight_decay": -1.0},
    ],
)
def test_a_bad_recipe_is_one_line(kw):
    with pytest.raises(VsaeError, match="a training recipe needs") as e:
        TrainRecipe(**{"steps": 10, "batch_size": 8, "lr": 1e-3, **kw})
    assert "\n" not in str(e.value)
