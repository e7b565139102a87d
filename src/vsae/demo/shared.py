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
from vsae.demo.findings import DOES_NOT_HOLD, HOLDS, NOT_TESTABLE, Finding
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
    from vsae.extract.mllm_tokens import MllmExtractConfig, extract_mllm
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
    rep = run_shared(
        pairs, out / "shared", SharedConfig(top_k=cfg.top_k, seed=cfg.seed), phrases=phrase_words()
    )
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


def phrase_words() -> dict[str, tuple[str, str]]:
    """Words of the world's class phrases ("five pointed star", "plus cross") that name one shape
    only and are no attribute value themselves: word -> ("shape", shape)."""
    from vsae.world import taxonomy as tx
    from vsae.world.generate import attribute_vocab

    values = {
        w for a in ("shape", "colour", "size", "position", "background", "tone") for w in attribute_vocab(a)
    }
    shapes: dict[str, set[str]] = {}
    for cls, phrase in tx.VARIANT_PHRASE.items():
        for w in phrase.split():
            shapes.setdefault(w, set()).add(cls.split("_")[0])
    return {w: ("shape", next(iter(s))) for w, s in shapes.items() if len(s) == 1 and w not in values}


def shared_finding(shared: dict[str, Any]) -> Finding:
    """The verdict on "some SAE latents are shared across modalities, and they mean the same concept
    in both", per layer by concept selectivity (`vsae.eval.selectivity`): shared latents found
    (matched-value rate above the mismatched-value rate, binomial p < alpha) with the planted
    control found. Holds when some layer has them; "not testable here" when the control fails
    on every layer; the minimum detectable rate is printed beside each layer's verdict."""
    parts, found, control_ok, per = [], [], [], {}
    for h, L in shared["layers"].items():
        sel = L.get("selectivity")
        if sel is None:
            parts.append(f"{h}: no ground truth, not measured")
            continue
        c = sel["control"]
        found.append(bool(sel["found"]))
        control_ok.append(bool(c["found"]))
        top = ", ".join(
            f"{p['value']} ({p['image_auroc']:.2f}/{p['text_auroc']:.2f})" for p in sel["shared_pairs"][:4]
        )
        parts.append(
            f"{h}: {'shared latents found' if sel['found'] else 'none found'} — {sel['n_shared']} of "
            f"{sel['n_image_selective']} image-selective (latent, value) pairs are text-selective for the same value "
            f"({sel['matched_rate']:.1%}) vs {sel['mismatched_rate']:.1%} for another value of the attribute "
            f"(binomial p = {sel['p_value']:.2g}; detectable from {sel['min_detectable_rate']:.1%} at 80% power); "
            f"{len(sel['shared_latents'])} latents{': ' + top if top else ''}; planted control {c['n_found']}/"
            f"{c['n_planted']} found; {L['n_shared']} of {L['n_live']} live latents in the 0.2-0.8 frequency band"
        )
        per[h] = {
            k: sel[k]
            for k in (
                "found",
                "n_shared",
                "n_image_selective",
                "matched_rate",
                "mismatched_rate",
                "p_value",
                "min_detectable_rate",
                "control",
            )
        }
    if not found or not any(control_ok):
        verdict = NOT_TESTABLE
    else:
        verdict = HOLDS if any(f and c for f, c in zip(found, control_ok)) else DOES_NOT_HOLD
    return Finding(
        claim="Some SAE latents of the multimodal model's language model are shared across image and text "
        "tokens and mean the same concept in both (selective for the same attribute value on images and on "
        "words, AUROC >= 0.8, above the mismatched-value baseline at p < 0.05), per layer",
        holds=verdict == HOLDS,
        detail="; ".join(parts),
        source="Olson et al. (project's definitions)",
        verdict=verdict,
        evidence={
            "per_layer": per,
            "baseline": "the same latents' text selectivity for another value of the attribute",
            "control": "planted latents, one per value (80% of positives, 5% of others), both modalities",
        },
    )
