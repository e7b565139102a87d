"""Hierarchy metrics of the latents' highest-activating images (HAI).

* LCA depth per Matryoshka group — Pach et al. (2025): for latent f, the classes of its HAI
  images; for every pair, the depth of their lowest common ancestor = the length of the common
  prefix of the two root-first taxonomy paths. The latent's depth is the mean (rounded half up)
  and, separately, the most common value (ties: the smaller depth). Each Matryoshka group's
  average over its non-excluded latents is reported.
* Ontology — the project's own definition (Olson et al.'s body was not available; labelled
  "project definition" in outputs): the lowest common hypernym (LCH) of a latent's HAI classes
  in the class DAG (the common ancestor with the longest root path; ties: smallest node id), its
  height (longest path down to a leaf of the DAG over the classes' ancestors), and ontological
  coverage = the fraction of internal DAG nodes that are the LCH of at least one latent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval.class_hierarchy import ClassHierarchy

VIRTUAL_ROOT = "<root>"  # joins a forest of taxonomies (LCA depth 0 = "only the root in common")
ONTOLOGY_DEFINITION = (
    "project definition (Olson et al.'s paper body was not available): LCH = deepest common "
    "ancestor of a latent's HAI classes; height = longest path down to a leaf; coverage = "
    "fraction of internal hierarchy nodes (a virtual root joins a forest) that are the LCH of at least one latent"
)


def _image_classes(hai_idx_Fk: np.ndarray, labels_N: np.ndarray) -> np.ndarray:
    """Class index of every HAI image; -1 for padding (index -1)."""
    labels_N = np.asarray(labels_N, dtype=np.int64)
    idx = np.asarray(hai_idx_Fk, dtype=np.int64)
    if idx.size and idx.max() >= labels_N.shape[0]:
        raise VsaeError(
            f"top images refer to image {int(idx.max())} but there are labels for {labels_N.shape[0]} images; "
            "give one label per image of the store"
        )
    return np.where(idx >= 0, labels_N[np.clip(idx, 0, None)], -1)


def lca_depth_matrix(taxonomy: ClassHierarchy, class_names: Sequence[str]) -> np.ndarray:
    """[C, C] int: the common-prefix length of the classes' root-first paths."""
    taxonomy.check_classes(class_names)
    paths = [taxonomy.paths[c] for c in class_names]
    depth_max = max(len(p) for p in paths)
    c = len(paths)
    out = np.zeros((c, c), dtype=np.int16)
    prefix_equal = np.ones((c, c), dtype=bool)
    for level in range(depth_max):
        codes: dict[str, int] = {}
        col = np.array([codes.setdefault(p[level], len(codes)) if level < len(p) else -1 for p in paths])
        prefix_equal &= (col[:, None] == col[None, :]) & (col[:, None] >= 0)
        out += prefix_equal
    return out


def latent_lca_depths(
    hai_idx_Fk: np.ndarray, excluded_F: np.ndarray, labels_N: np.ndarray, depth_CC: np.ndarray
) -> dict[str, np.ndarray]:
    """Per latent: mean, rounded mean and majority LCA depth over all pairs of its HAI images
    (NaN / -1 for excluded latents and latents with fewer than two HAI images)."""
    cls = _image_classes(hai_idx_Fk, labels_N)
    f, k = cls.shape
    iu, ju = np.triu_indices(k, 1)
    a, b = cls[:, iu], cls[:, ju]
    valid = (a >= 0) & (b >= 0)
    d = np.where(valid, depth_CC[np.clip(a, 0, None), np.clip(b, 0, None)], 0).astype(np.int64)
    n = valid.sum(axis=1)
    ok = ~np.asarray(excluded_F, dtype=bool) & (n > 0)
    mean = np.full(f, np.nan)
    mean[ok] = d[ok].sum(axis=1) / n[ok]
    rounded = np.full(f, -1, dtype=np.int64)
    rounded[ok] = np.floor(mean[ok] + 0.5).astype(np.int64)
    majority = np.full(f, -1, dtype=np.int64)
    dmax = int(d.max()) + 1 if d.size else 1
    counts = np.zeros((f, dmax), dtype=np.int64)
    rows = np.repeat(np.arange(f), valid.sum(axis=1))
    np.add.at(counts, (rows, d[valid]), 1)
    majority[ok] = counts[ok].argmax(axis=1)  # argmax takes the first (smallest) depth on ties
    return {"mean": mean, "rounded": rounded, "majority": majority}


def group_bounds(group_sizes: Sequence[int]) -> list[tuple[int, int]]:
    ends = np.cumsum(group_sizes).tolist()
    return list(zip([0, *ends[:-1]], ends))


def depth_per_group(depths: dict[str, np.ndarray], group_sizes: Sequence[int]) -> list[dict[str, Any]]:
    """Average (of the rounded mean, and of the majority) depth over the scored latents of each
    Matryoshka group, in order (Pach et al.: earlier groups are shallower)."""
    f = depths["rounded"].shape[0]
    if sum(group_sizes) != f:
        raise VsaeError(
            f"Matryoshka groups cover {sum(group_sizes)} latents but there are {f}; use the SAE's groups"
        )
    out = []
    for g, (a, b) in enumerate(group_bounds(group_sizes)):
        ok = depths["rounded"][a:b] >= 0
        out.append(
            {
                "group": g,
                "latents": [a, b],
                "n_scored": int(ok.sum()),
                "mean_depth": float(depths["rounded"][a:b][ok].mean()) if ok.any() else float("nan"),
                "majority_depth": float(depths["majority"][a:b][ok].mean()) if ok.any() else float("nan"),
            }
        )
    return out


class Ontology:
    """The class DAG restricted to the classes' ancestors, with depth/height/ancestor queries."""

    def __init__(self, taxonomy: ClassHierarchy, class_names: Sequence[str]):
        taxonomy.check_classes(class_names)
        self.tax = taxonomy
        self.class_nodes = [taxonomy.class_node(c) for c in class_names]
        nodes: set[str] = set()
        stack = list(self.class_nodes)
        while stack:
            n = stack.pop()
            if n not in nodes:
                nodes.add(n)
                stack.extend(taxonomy.parents.get(n, ()))
        self.parents = {n: tuple(taxonomy.parents.get(n, ())) for n in nodes}
        roots = sorted(n for n in nodes if not self.parents[n])
        if len(roots) > 1:  # a forest (e.g. several kingdoms): join the trees under one virtual root
            for r in roots:
                self.parents[r] = (VIRTUAL_ROOT,)
            self.parents[VIRTUAL_ROOT] = ()
            nodes.add(VIRTUAL_ROOT)
        self.nodes = nodes
        self.children: dict[str, list[str]] = {n: [] for n in nodes}
        for n in nodes:
            for p in self.parents[n]:
                self.children[p].append(n)
        self.internal = {n for n in nodes if self.children[n]}
        self.ancestors = lru_cache(maxsize=None)(self._ancestors)
        self.depth = lru_cache(maxsize=None)(self._depth)
        self.height = lru_cache(maxsize=None)(self._height)

    def _ancestors(self, node: str) -> frozenset[str]:
        out = {node}
        for p in self.parents[node]:
            out |= self.ancestors(p)
        return frozenset(out)

    def _depth(self, node: str) -> int:
        """Longest path from a root (a root has depth 0)."""
        ps = self.parents[node]
        return 1 + max(self.depth(p) for p in ps) if ps else 0

    def _height(self, node: str) -> int:
        """Longest path down to a leaf of the DAG (a leaf has height 0)."""
        ch = self.children[node]
        return 1 + max(self.height(c) for c in ch) if ch else 0

    def lch(self, class_idx: Sequence[int]) -> str | None:
        """Lowest common hypernym of a set of classes; None if they share no ancestor."""
        common = None
        for c in set(class_idx):
            anc = self.ancestors(self.class_nodes[c])
            common = anc if common is None else common & anc
        if not common:
            return None
        return min(common, key=lambda n: (-self.depth(n), n))


def ontology_report(
    hai_idx_Fk: np.ndarray,
    excluded_F: np.ndarray,
    labels_N: np.ndarray,
    taxonomy: ClassHierarchy,
    class_names: Sequence[str],
) -> dict[str, Any]:
    """Per-latent LCH and height, and ontological coverage (project definition, see module doc)."""
    ont = Ontology(taxonomy, class_names)
    cls = _image_classes(hai_idx_Fk, labels_N)
    lch: list[str | None] = []
    cache: dict[frozenset, str | None] = {}
    for f in range(cls.shape[0]):
        if excluded_F[f]:
            lch.append(None)
            continue
        key = frozenset(int(c) for c in cls[f] if c >= 0)
        if key not in cache:
            cache[key] = ont.lch(sorted(key)) if key else None
        lch.append(cache[key])
    heights = [ont.height(n) if n is not None else -1 for n in lch]
    used_internal = {n for n in lch if n is not None and n in ont.internal}
    scored = [h for h, n in zip(heights, lch) if n is not None]
    return {
        "definition": ONTOLOGY_DEFINITION,
        "taxonomy": taxonomy.source,
        "n_latents_scored": len(scored),
        "n_latents_leaf_lch": int(sum(1 for n in lch if n is not None and n not in ont.internal)),
        "n_latents_no_common_ancestor": int(
            sum(1 for f, n in enumerate(lch) if n is None and not excluded_F[f])
        ),
        "mean_height": float(np.mean(scored)) if scored else float("nan"),
        "height_histogram": dict(sorted(Counter(scored).items())),
        "n_internal_nodes": len(ont.internal),
        "ontological_coverage": len(used_internal) / len(ont.internal) if ont.internal else float("nan"),
        "lch": [None if n is None else [n, taxonomy.name(n), h] for n, h in zip(lch, heights)],
    }


def depth_trend(
    depths: dict[str, np.ndarray], group_sizes: Sequence[int], n_boot: int = 2000, seed: int = 0
) -> dict[str, Any] | None:
    """Last minus first Matryoshka group's mean depth (positive: the first group is shallower, as
    Pach et al. find) with a 95% bootstrap interval over the scored latents of the two groups
    (each resampled on its own, `vsae.eval.verdict`); None when a group has fewer than 2."""
    from vsae.eval.verdict import stratified_bootstrap

    (a0, b0), (a1, b1) = group_bounds(group_sizes)[0], group_bounds(group_sizes)[-1]
    first, last = (depths["rounded"][a:b] for a, b in ((a0, b0), (a1, b1)))
    first, last = first[first >= 0], last[last >= 0]
    if first.size < 2 or last.size < 2:
        return None
    iv = stratified_bootstrap(
        {"first": first, "last": last}, lambda m: m["last"][:, 0] - m["first"][:, 0], n_boot, 0.95, seed
    )
    return {**iv.to_json(), "n_first": int(first.size), "n_last": int(last.size)}
