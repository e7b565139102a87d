"""The demo's shared-features section: Olson et al.'s shared vision/language latents, measured on
the language model of the shipped tiny LLaVA (both of its layers) with the world's ground truth.

Stages, each through the library paths a user runs (`vsae extract-mllm`, `vsae train`,
`vsae eval shared`): balanced image-token + caption-token stores of the LM's residual stream on a
seeded sample of train images (SAE training) and of test images (evaluation), one TopK SAE per
layer, then densities, ratios, shared fraction and agreement on the test store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vsae.demo.config import demo_train_config
from vsae.demo.findings import Finding
from vsae.eval.shared import SharedConfig, SharedReport, run_shared

HOOKS = ("resid.0", "resid.1")


@dataclass(frozen=True)
class SharedDemoConfig:
    """The shared-features experiment of the demo.

    Attributes
    ----------
    hooks: layers of the tiny LLaVA's language model (it has two).
    n_train, n_test: seeded samples of train / test images (each gives its image rows and its caption's rows).
    expansion, k, steps, batch_size, lr: the TopK SAE per layer (Gao et al.) and its training.
    top_k: top image / text tokens per latent for the ground truth.
    seed: seeds the samples, the balancing, the SAEs and the random baseline.
    """

    hooks: tuple[str, ...] = HOOKS
    n_train: int = 1000
    n_test: int = 500
    expansion: int = 4
    k: int = 8
    steps: int = 300
    batch_size: int = 256
    lr: float = 1e-3
    top_k: int = 16
    seed: int = 0


@dataclass(frozen=True)
class SharedDemoResult:
    """The demo's shared-features experiment.

    Attributes
    ----------
    report: `vsae.eval.shared.run_shared`'s result on the test stores (both layers).
    setup: the experiment's setup (config, model, question, tokens per image, rows) for results.json.
    """

    report: SharedReport
    setup: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """results.json["shared"]: shared.json's content with the setup under "setup"."""
        return {**self.report.to_json(), "setup": self.setup}


def run_shared_demo(
    world_dir: Path, out: Path, cfg: SharedDemoConfig, progress: bool = False
) -> SharedDemoResult:
    """Extract, train and evaluate (each through the library path a user runs)."""
    from vsae.extract_mllm import MllmExtractConfig, extract_mllm
    from vsae.sae import SAEConfig
    from vsae.store import ActivationStore
    from vsae.train import run_name, train
    from vsae.train.checkpoint import read_run_state
    from vsae.world.llava import shipped_llava_dir

    llava = str(shipped_llava_dir())
    base = out / "stores" / "llava-lm"
    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        extract_mllm(
            MllmExtractConfig(
                model=llava,
                hooks=cfg.hooks,
                data=str(world_dir),
                split=split,
                out=str(base / split),
                n_images=n,
                dtype="float32",
                batch_size=64,
                seed=cfg.seed,
                progress=progress,
            )
        )
    pairs = []
    for hook in cfg.hooks:
        src = ActivationStore.open(base / "train" / hook)
        c = SAEConfig(
            arch="topk",
            d_in=src.d,
            d_sae=cfg.expansion * src.d,
            k=cfg.k,
            aux_k=2 * cfg.k,
            provenance=src.provenance,
        )
        c = replace(c, name=run_name(c, cfg.expansion))
        tcfg = demo_train_config(cfg, len(src))
        run_dir = out / "runs" / "llava-lm" / hook
        (sae_dir,) = train(
            src, [c], tcfg, run_dir, resume=read_run_state(run_dir) is not None, progress=progress
        )
        pairs.append((base / "test" / hook, sae_dir))
    rep = run_shared(pairs, out / "shared", SharedConfig(top_k=cfg.top_k, seed=cfg.seed))
    test = ActivationStore.open(base / "test" / cfg.hooks[0])
    setup = {
        **asdict(cfg),
        "model": llava,
        "question": test.provenance["question"],
        "image_tokens_per_image": test.provenance["n_image_tokens"],
        "balance": test.provenance["balance"],
        "rows_train": len(ActivationStore.open(base / "train" / cfg.hooks[0])),
        "rows_test": len(test),
    }
    return SharedDemoResult(rep, setup)


ALPHA = 0.05  # significance level of the agreement-vs-random binomial test


def shared_finding(shared: dict[str, Any]) -> Finding:
    """The verdict on "some SAE latents are shared across modalities, and they mean the same concept
    in both": on every layer at least one live latent is shared, and the agreement of the scored
    shared latents is above the random-pairing baseline by a one-sided binomial test at p < 0.05."""
    parts, ok = [], True
    for h, L in shared["layers"].items():
        ag, ra, p = L.get("agreement"), L.get("random_agreement"), L.get("p_value")
        has_gt = ag is not None and ra is not None and p is not None and L.get("n_scored", 0) >= 2
        ok &= L["n_shared"] > 0 and has_gt and ag > ra and p < ALPHA
        gt = (
            f"agreement {ag:.1%} over {L['n_scored']} scored vs {ra:.1%} random (binomial p = {p:.3g})"
            if has_gt
            else "agreement not measurable (fewer than 2 scored shared latents)"
        )
        parts.append(
            f"{h}: {L['n_shared']} of {L['n_live']} live latents shared ({L['shared_fraction']:.1%}); {gt}"
        )
    return Finding(
        claim="Some SAE latents of the multimodal model's language model are shared across image and text "
        "tokens, and they mean the same concept in both (same attribute value at their top image tokens "
        f"and top words, above a random pairing at p < {ALPHA})",
        holds=bool(ok),
        detail="; ".join(parts),
        source="Olson et al. (project's definitions)",
    )
