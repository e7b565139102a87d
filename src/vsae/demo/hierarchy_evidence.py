"""Evidence for the Matryoshka depth finding on the world (Pach et al. 2025): is a missing trend
the metric, the training or the world?

- the metric and the training: a planted nested dictionary where the answer is known
  (`planted_hierarchy`), for a Matryoshka SAE and, as a control, a BatchTopK one;
- the world: the share of each layer's variance that each level of its two taxonomies explains
  (class: shape family -> shape -> variant; colour: colour family -> colour) and, beside them,
  the attributes outside both (`vsae.eval.variance`). The depth per group itself is measured in
  both taxonomies by `analyse_sae`; dead latents per group come with it.
- the baseline: each coarse level against random groupings of its fine values into groups of the
  same sizes (`vsae.eval.grouping`). A taxonomy is testable on a layer only when its top level is
  above that baseline; otherwise the depth finding is "not testable here" on that layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vsae.demo.demo_config import Stores, Tables
from vsae.demo.planted_hierarchy import PlantedHierarchyConfig, nested_dictionary, run_planted_hierarchy
from vsae.eval.grouping import grouping_baseline
from vsae.eval.variance import variance_shares

TAXONOMY_LEVELS = {
    "class": ("shape_family", "shape", "class_name"),
    "colour": ("colour_family", "colour"),
}
OTHER_ATTRIBUTES = ("size", "tone", "outline", "position", "background")
# the key of each taxonomy's depth per group in results.json, and its top (coarse, fine) pair
DEPTH_KEYS = {"class": "depth_per_group", "colour": "depth_per_group_colour"}


def top_level_baselines(x_Nd: Any, table: dict[str, Any], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per taxonomy, `grouping_baseline` of its top (coarse, fine) pair on `x_Nd` (e.g. an SAE's
    reconstruction of the test split, whose rows `table` labels)."""
    out = {}
    for tax, (coarse, fine, *_) in TAXONOMY_LEVELS.items():
        coarse_of = dict(zip(table[fine].tolist(), table[coarse].tolist()))
        out[tax] = {"level": f"{coarse}/{fine}", **grouping_baseline(x_Nd, table[fine], coarse_of, seed=seed)}
    return out


def grouping_baselines(
    stores: Stores, tables: Tables, hooks: Sequence[str], seed: int = 0
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per hook and taxonomy, per (coarse, fine) pair of adjacent levels ("coarse/fine"): the
    coarse level's variance share against random groupings of the same sizes (train split)."""
    t = tables["train"]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for h in hooks:
        x = stores["train"][h][:].numpy()
        out[h] = {}
        for tax, levels in TAXONOMY_LEVELS.items():
            out[h][tax] = {}
            for coarse, fine in zip(levels, levels[1:]):
                coarse_of = dict(zip(t[fine].tolist(), t[coarse].tolist()))
                out[h][tax][f"{coarse}/{fine}"] = grouping_baseline(x, t[fine], coarse_of, seed=seed)
    return out


def variance_by_level(stores: Stores, tables: Tables, hooks: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per hook: the between-group variance fraction of the train split for every taxonomy level
    and for the other attributes."""
    names = [a for levels in TAXONOMY_LEVELS.values() for a in levels] + list(OTHER_ATTRIBUTES)
    t = tables["train"]
    return {h: variance_shares(stores["train"][h][:].numpy(), {a: t[a] for a in names}) for h in hooks}


def planted_control(out: Path, seed: int = 0) -> dict[str, Any]:
    """The planted nested dictionary, with a Matryoshka SAE and a BatchTopK control."""
    cfg = PlantedHierarchyConfig(seed=seed)
    data = nested_dictionary(cfg)
    return {
        "config": asdict(cfg),
        "variance_share": variance_shares(
            data.x_Nd.numpy(), {"family": data.leaf_N // cfg.n_leaves, "leaf": data.leaf_N}
        ),
        "matryoshka": run_planted_hierarchy(cfg, out / "matryoshka", "matryoshka"),
        "batchtopk": run_planted_hierarchy(cfg, out / "batchtopk", "batchtopk"),
    }


def hierarchy_evidence(
    stores: Stores, tables: Tables, hooks: Sequence[str], out: Path, seed: int = 0
) -> dict[str, Any]:
    """What results.json holds under "hierarchy"."""
    return {
        "levels": {k: list(v) for k, v in TAXONOMY_LEVELS.items()},
        "variance_share": variance_by_level(stores, tables, hooks),
        "grouping_baseline": grouping_baselines(stores, tables, hooks, seed),
        "planted": planted_control(out / "planted", seed),
    }
