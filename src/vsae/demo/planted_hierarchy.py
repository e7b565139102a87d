"""A planted hierarchy: the control for the Matryoshka depth finding (Pach et al. 2025).

Activations come from a nested dictionary: a few high-variance *coarse* atoms (one per family)
and more lower-variance *fine* atoms (one per leaf class) that refine them,
`x = a * coarse[family(y)] + b * fine[y] + noise`. The classes form a 2-level taxonomy
(family -> leaf), so the LCA depth of two images is 0 (different families), 1 (same family) or
2 (same leaf). A Matryoshka SAE, whose first group must reconstruct on its own, should spend
that group on the coarse atoms; the depth metric (`vsae.eval.hierarchy`) must then find the
first group shallower (~1) than the later ones (~2). If it does here and not on the world, the
metric and the training are not what hides the finding on the world.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.demo.demo_config import demo_train_config
from vsae.errors import VsaeError


@dataclass(frozen=True)
class PlantedHierarchyConfig:
    """The planted data and the SAE trained on it.

    n: rows; d: width; n_families: coarse atoms; n_leaves: fine atoms per family;
    coarse_scale, fine_scale: mean coefficient of a row's coarse and fine atom (coarse >> fine
    makes the variance coarse-to-fine); noise: Gaussian noise std per dimension;
    d_sae, k, groups: the Matryoshka BatchTopK SAE (first group = n_families latents);
    steps, batch_size, lr: its training; top_k: top images per latent; seed: everything.
    """

    n: int = 4096
    d: int = 32
    n_families: int = 4
    n_leaves: int = 4
    coarse_scale: float = 6.0
    fine_scale: float = 1.0
    noise: float = 0.05
    d_sae: int = 24
    k: int = 2
    groups: tuple[float, ...] = (4 / 24, 20 / 24)
    steps: int = 1000
    batch_size: int = 256
    lr: float = 3e-3
    top_k: int = 16
    seed: int = 0


@dataclass(frozen=True)
class NestedData:
    """x_Nd: activations; leaf_N: leaf class per row; class_paths: {leaf name: [family, leaf]}
    in leaf-index order; coarse_Ad, fine_Ld: the planted unit atoms."""

    x_Nd: torch.Tensor
    leaf_N: np.ndarray
    class_paths: dict[str, list[str]]
    coarse_Ad: torch.Tensor
    fine_Ld: torch.Tensor


def nested_dictionary(cfg: PlantedHierarchyConfig) -> NestedData:
    """Rows made of one coarse atom (their family's) and one fine atom (their leaf's)."""
    g = torch.Generator().manual_seed(cfg.seed)
    n_leaf = cfg.n_families * cfg.n_leaves
    if cfg.d < cfg.n_families + n_leaf:
        raise VsaeError(f"d={cfg.d} cannot hold {cfg.n_families + n_leaf} orthogonal atoms; raise d")
    q, _ = torch.linalg.qr(torch.randn(cfg.d, cfg.n_families + n_leaf, generator=g))
    atoms = q.T  # orthonormal: each atom's coefficient is readable without interference
    coarse, fine = atoms[: cfg.n_families], atoms[cfg.n_families :]
    leaf = torch.randint(0, n_leaf, (cfg.n,), generator=g)
    fam = leaf // cfg.n_leaves
    a = cfg.coarse_scale * (0.5 + torch.rand(cfg.n, 1, generator=g))
    b = cfg.fine_scale * (0.5 + torch.rand(cfg.n, 1, generator=g))
    x = a * coarse[fam] + b * fine[leaf] + cfg.noise * torch.randn(cfg.n, cfg.d, generator=g)
    paths = {
        f"f{i // cfg.n_leaves}_l{i}": [f"f{i // cfg.n_leaves}", f"f{i // cfg.n_leaves}_l{i}"]
        for i in range(n_leaf)
    }
    return NestedData(x, leaf.numpy(), paths, coarse, fine)


def run_planted_hierarchy(cfg: PlantedHierarchyConfig, out: Path, arch: str = "matryoshka") -> dict[str, Any]:
    """Train one SAE on `nested_dictionary(cfg)` and measure its depth per group (for a
    non-Matryoshka `arch` the same group boundaries are applied to its latents, as a control)."""
    from vsae.eval.class_hierarchy import from_paths
    from vsae.eval.hierarchy import depth_per_group, latent_lca_depths, lca_depth_matrix
    from vsae.eval.topimages import top_images
    from vsae.sae import load as load_sae
    from vsae.sae.archs.matryoshka import MatryoshkaConfig
    from vsae.sae.sae_config import config_for
    from vsae.train import train
    from vsae.train.batch_sources import TensorSource
    from vsae.train.checkpoint import read_run_state

    data = nested_dictionary(cfg)
    sae_cfg = config_for(  # k, groups, aux_k: the settings the architecture has
        arch,
        d_in=cfg.d,
        d_sae=cfg.d_sae,
        k=cfg.k,
        groups=cfg.groups,
        aux_k=2 * cfg.k,
        name=f"planted-{arch}",
    )
    tcfg = demo_train_config(cfg, cfg.n, logs=4)
    resume = read_run_state(out) is not None  # a re-run of the demo with the same --out
    (run_dir,) = train(TensorSource(data.x_Nd), [sae_cfg], tcfg, out, resume=resume, progress=False)
    sae = load_sae(run_dir)
    with torch.no_grad():
        z = sae.encode(data.x_Nd).numpy()
    top = top_images(z, k=cfg.top_k)
    names = list(data.class_paths)
    depth_cc = lca_depth_matrix(from_paths(data.class_paths, "planted nested dictionary"), names)
    depths = latent_lca_depths(top.indices_Fk, top.excluded_F, data.leaf_N, depth_cc)
    sizes = list(MatryoshkaConfig(d_in=cfg.d, d_sae=cfg.d_sae, k=cfg.k, groups=cfg.groups).group_sizes)
    dec = sae.W_dec_Fd.detach()
    dec = dec / dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return {
        "arch": arch,
        "depth_per_group": depth_per_group(depths, sizes),
        # which planted atom each latent's decoder row is closest to (cosine), per group
        "coarse_cosine_per_group": _best_cos_per_group(dec, data.coarse_Ad, sizes),
        "fine_cosine_per_group": _best_cos_per_group(dec, data.fine_Ld, sizes),
    }


def _best_cos_per_group(dec_Fd: torch.Tensor, atoms_Ad: torch.Tensor, sizes: list[int]) -> list[float]:
    """Mean over the latents of each group of their best |cosine| with one of `atoms`."""
    best = (dec_Fd @ atoms_Ad.T).abs().max(dim=1).values.numpy()
    ends = np.cumsum(sizes)
    return [float(best[a:b].mean()) for a, b in zip([0, *ends[:-1]], ends)]
