"""Olson et al.'s shared vision/language features, measured in the language model of a multimodal
LLM (the demo: the shipped tiny LLaVA, both of its layers) with the ground truth of the images.

Steps, each through the library paths a user runs (`vsae extract-mllm`, `vsae train`,
`vsae eval shared`): `extract_stores` (balanced image-token + caption-token stores of the LM's
residual stream on a seeded sample of train images, for SAE training, and of test images, for
evaluation), `train_saes` (one TopK SAE per layer), `measure` (densities, ratios, shared fraction
and agreement on the test store) and `describe_setup`. The metric itself is `vsae.eval.shared`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vsae.eval.shared import SharedConfig, SharedReport, run_shared
from vsae.train import TrainConfig

HOOKS = ("resid.0", "resid.1")


@dataclass(frozen=True)
class SharedFeaturesConfig:
    """The shared-features experiment.

    Attributes
    ----------
    hooks: layers of the multimodal model's language model (the tiny LLaVA has two).
    n_train, n_test: seeded samples of train / test images (each gives its image rows and its caption's rows).
    expansion, k, steps, batch_size, lr: the TopK SAE per layer (Gao et al.) and its training.
    top_k: top image / text tokens per latent for the ground truth.
    text_kinds: text rows of the test stores: caption (alone) and teacher-forced (after the image
        prompt, image in context); each scored apart. The SAEs train on caption-alone rows.
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
    text_kinds: tuple[str, ...] = ("caption", "teacher-forced")
    seed: int = 0


@dataclass(frozen=True)
class SharedSetup:
    """How the experiment was set up, from its config and its stores' provenance.

    Attributes
    ----------
    config: the experiment's configuration.
    model: the multimodal model (its directory or hub id).
    question: the question of the image prompts (the stores' provenance).
    image_tokens_per_image: image tokens of one image in the language model.
    balance: how image and text rows were balanced (the stores' provenance).
    rows_train, rows_test: rows of the first hook's train / test store.
    """

    config: SharedFeaturesConfig
    model: str
    question: str
    image_tokens_per_image: int
    balance: Any
    rows_train: int
    rows_test: int

    def to_json(self) -> dict[str, Any]:
        """results.json["shared"]["setup"]: the config's fields, then the rest."""
        rest = {k: v for k, v in vars(self).items() if k != "config"}
        return {**asdict(self.config), **rest}


@dataclass(frozen=True)
class SharedFeaturesResult:
    """The shared-features experiment's result.

    Attributes
    ----------
    report: `vsae.eval.shared.run_shared`'s result on the test stores (every layer).
    setup: the experiment's setup.
    """

    report: SharedReport
    setup: SharedSetup

    def to_json(self) -> dict[str, Any]:
        """results.json["shared"]: shared.json's content with the setup under "setup" (the
        per-latent ratio arrays stay out; they are in the plot)."""
        return {**self.report.to_json(), "setup": self.setup.to_json()}


STORES = ("stores", "llava-lm")  # under the output directory: <split>/<hook> stores


def extract_stores(llava: str, data_dir: Path, base: Path, cfg: SharedFeaturesConfig, progress: bool) -> None:
    """The train and test stores of every hook under ``base``/<split>/<hook> (`vsae extract-mllm`)."""
    from vsae.extract.mllm_tokens import MllmExtractConfig, extract_mllm

    for split, n in (("train", cfg.n_train), ("test", cfg.n_test)):
        extract_mllm(
            MllmExtractConfig(
                model=llava,
                hooks=cfg.hooks,
                data=str(data_dir),
                split=split,
                out=str(base / split),
                n_images=n,
                dtype="float32",
                batch_size=64,
                seed=cfg.seed,
                progress=progress,
                text_kinds=("caption",) if split == "train" else cfg.text_kinds,
            )
        )


def train_saes(
    base: Path,
    out: Path,
    cfg: SharedFeaturesConfig,
    train_config: Callable[[int], TrainConfig],
    progress: bool,
) -> list[tuple[Path, Path]]:
    """One TopK SAE per hook on its train store (`vsae train`, resuming a finished run); returns
    (test store, SAE directory) per hook."""
    from vsae.sae import SAEConfig
    from vsae.store import ActivationStore
    from vsae.train import run_name, train
    from vsae.train.checkpoint import read_run_state

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
        run_dir = out / "runs" / "llava-lm" / hook
        (sae_dir,) = train(
            src,
            [c],
            train_config(len(src)),
            run_dir,
            resume=read_run_state(run_dir) is not None,
            progress=progress,
        )
        pairs.append((base / "test" / hook, sae_dir))
    return pairs


def measure(
    pairs: list[tuple[Path, Path]],
    out: Path,
    cfg: SharedFeaturesConfig,
    phrases: Mapping[str, tuple[str, str]] | None,
) -> SharedReport:
    """`vsae eval shared` on the test stores, written to ``out``/shared."""
    return run_shared(pairs, out / "shared", SharedConfig(top_k=cfg.top_k, seed=cfg.seed), phrases=phrases)


def describe_setup(llava: str, base: Path, cfg: SharedFeaturesConfig) -> SharedSetup:
    """The setup from the config and the first hook's stores."""
    from vsae.store import ActivationStore

    test = ActivationStore.open(base / "test" / cfg.hooks[0])
    return SharedSetup(
        config=cfg,
        model=llava,
        question=test.provenance["question"],
        image_tokens_per_image=test.provenance["n_image_tokens"],
        balance=test.provenance["balance"],
        rows_train=len(ActivationStore.open(base / "train" / cfg.hooks[0])),
        rows_test=len(test),
    )


def run_shared_features(
    llava: str | Path,
    data_dir: Path,
    out: Path,
    cfg: SharedFeaturesConfig,
    train_config: Callable[[int], TrainConfig],
    phrases: Mapping[str, tuple[str, str]] | None = None,
    progress: bool = False,
) -> SharedFeaturesResult:
    """Extract, train and evaluate on the image folder ``data_dir`` (train and test splits).

    ``train_config``: the training settings for n training rows (the demo's recipe);
    ``phrases``: extra words naming attribute values (`vsae.eval.shared.run_shared`)."""
    llava = str(llava)
    base = out.joinpath(*STORES)
    extract_stores(llava, data_dir, base, cfg, progress)
    pairs = train_saes(base, out, cfg, train_config, progress)
    rep = measure(pairs, out, cfg, phrases)
    return SharedFeaturesResult(rep, describe_setup(llava, base, cfg))
