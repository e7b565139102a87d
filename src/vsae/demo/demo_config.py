"""Configuration of `vsae demo`: the whole pipeline on the embedded shapes world."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from vsae.train.train_config import TrainConfig  # torch-free

if TYPE_CHECKING:  # `vsae demo --help` reads this module: no numpy / store import at run time
    import numpy as np

    from vsae.store import ActivationStore

Stores: TypeAlias = "dict[str, dict[str, ActivationStore]]"
"""split -> hook (and "sim": the similarity encoder's embeddings, "embed") -> store."""
Tables: TypeAlias = "dict[str, dict[str, np.ndarray]]"
"""split -> attribute (and "path") -> per-image values aligned with the stores' rows."""
RunKey: TypeAlias = tuple[str, str, int]
"""(hook, arch, expansion) of one trained SAE; (hook, "raw", 0) for the raw neurons."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs; the defaults finish in a few minutes on 2 CPU cores.

    Attributes
    ----------
    out: output directory (world images, stores, SAE runs, results.json, report.html).
    counts: images per world split (train / val / test / ood_background / ood_combo).
    layers: hook points of the world CLIP's vision tower to explain, besides `embed`.
    tokens: token selection (`cls` as Pach et al. for the CLIP SAEs, or `mean`).
    archs: SAE architectures (Pach et al.: BatchTopK and Matryoshka BatchTopK).
    expansions: dictionary size / width factors (MS should rise with them).
    k: active latents per row.
    groups: Matryoshka group fractions (Pach et al.).
    steps, batch_size, lr: SAE training.
    top_k: highest-activating images per latent (Pach et al.: 16).
    featured: (hook, arch, expansion) whose latents the report shows as image grids.
    seed: seeds the world, the extraction and the SAEs.
    clip_dir, simenc_dir: the model explained and the similarity encoder (None: the shipped ones).
    steer_latents, steer_images, steer_blank_latents: the steering experiment on the tiny LLaVA
        (latents clamped, test images asked about, latents tried on the blank image; 0 latents = skip).
    shared_images: (train, test) images whose image tokens and captions feed the shared
        vision/language latents of the tiny LLaVA's language model (Olson et al.; 0 train = skip).
    sae_seeds: train the featured SAE again with other seeds (`vsae.demo.probe_shift.SAE_SEEDS`)
        so that the probes-under-shift interval includes seed variance.
    diffusion: the diffusion section (steering the shipped tiny text-to-image model through its
        text-encoder SAE, discovery of latent attributes; `vsae.demo.diffusion`).
    progress: progress bars.
    """

    out: Path
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "train": 6000,
            "val": 500,
            "test": 1000,
            "ood_background": 500,
            "ood_combo": 500,
        }
    )
    layers: tuple[str, ...] = ("resid.1", "resid.2")
    tokens: str = "cls"
    archs: tuple[str, ...] = ("batchtopk", "matryoshka")
    expansions: tuple[int, ...] = (2, 4, 8)
    k: int = 8
    groups: tuple[float, ...] = (0.0625, 0.125, 0.25, 0.5625)
    steps: int = 800
    batch_size: int = 512
    lr: float = 1e-3
    top_k: int = 16
    featured: tuple[str, str, int] | None = None
    seed: int = 0
    clip_dir: str | None = None
    simenc_dir: str | None = None
    steer_latents: int = 10
    steer_images: int = 12
    steer_blank_latents: int = 16
    shared_images: tuple[int, int] = (1000, 500)
    sae_seeds: bool = True
    diffusion: bool = True
    progress: bool = True

    @property
    def hooks(self) -> tuple[str, ...]:
        return (*self.layers, "embed")

    @property
    def featured_sae(self) -> tuple[str, str, int]:
        return self.featured or (self.layers[-1], self.archs[-1], max(self.expansions))


def fast_config(out: Path, **kw: Any) -> DemoConfig:
    """A tiny demo for tests: small splits, short training."""
    base = dict(
        counts={"train": 600, "val": 100, "test": 200, "ood_background": 100, "ood_combo": 100},
        layers=("resid.1",),
        expansions=(2, 4),
        steps=150,
        batch_size=128,
        steer_latents=4,
        steer_images=6,
        steer_blank_latents=4,
        shared_images=(200, 100),
        diffusion=False,  # tested on its own (tests/steer/test_diffusion_demo.py)
        progress=False,
    )
    return DemoConfig(out=Path(out), **{**base, **kw})


class TrainsSAEs(Protocol):
    """A demo section's config that trains SAEs (DemoConfig, SharedDemoConfig, PlantedHierarchyConfig)."""

    @property
    def steps(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr(self) -> float: ...
    @property
    def seed(self) -> int: ...


def demo_train_config(cfg: TrainsSAEs, n_rows: int, val_rows: int = 0, logs: int = 10) -> TrainConfig:
    """How every demo section trains its SAEs: ``cfg``'s steps, batch size, lr and seed, ``logs`` log
    rows, no checkpoints, the data-dependent init on up to 4096 of the ``n_rows`` training rows."""
    return TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=cfg.seed,
        log_every=max(1, cfg.steps // logs),
        ckpt_every=0,
        val_rows=val_rows,
        init_rows=min(4096, n_rows),
    )
