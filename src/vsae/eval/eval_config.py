"""Settings of the `vsae eval` commands, free of torch, numpy and sklearn: the commands' options are
generated from these fields (:mod:`vsae.cli.from_config`), so the defaults, choices and help here
are the only ones. `vsae.eval.probe`, `vsae.eval.shared` and `vsae.eval.readers` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Pooling = Literal["auto", "cls", "mean"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
DEFAULT_ATTRIBUTES = ("shape", "colour", "size", "position", "background", "tone")
PROMPT = "a photo of a {}"  # CLIP's zero-shot class prompt (Radford et al. 2021)


@dataclass(frozen=True)
class PoolingConfig:
    """How the per-row activations of a store become one per image (`vsae.eval.readers.image_view`).

    Attributes
    ----------
    pooling: per-image activation of token stores: CLS token or mean over the stored tokens (auto:
        the row itself when there is one per image, else mean).
    """

    pooling: Pooling = "auto"


@dataclass(frozen=True)
class ReconConfig:
    """`vsae eval recon`: reconstruction metrics on a held-out store and the splice test.

    Attributes
    ----------
    batch_size: rows per SAE forward pass.
    max_rows: evaluate a seeded sample of N rows spread over the whole store (not its first N).
    n_images: images for the splice: a seeded sample spread over the whole split.
    prompt: zero-shot class prompt (CLIP).
    seed: seed of the max_rows / n_images samples.
    """

    batch_size: int = 4096
    max_rows: int | None = None
    n_images: int = 256
    prompt: str = PROMPT
    seed: int = 0


@dataclass(frozen=True)
class MsConfig:
    """`vsae eval ms`: the Monosemanticity Score (Pach et al.).

    Attributes
    ----------
    raw: also score the raw neurons of the activation store.
    """

    raw: bool = True


@dataclass(frozen=True)
class TopImagesConfig:
    """`vsae eval top-images`: highest-activating images per latent.

    Attributes
    ----------
    k: top images per latent.
    """

    k: int = field(default=16, metadata={"aliases": ("-k",)})


@dataclass(frozen=True)
class NamesConfig:
    """`vsae eval names`: latent names from the best-matching word.

    Attributes
    ----------
    prompt: the text prompt each word is put into before the text tower embeds it.
    """

    prompt: str = PROMPT


@dataclass(frozen=True)
class ProbeConfig:
    """Logistic-regression probe settings (Olson et al. 2025).

    Attributes
    ----------
    c: inverse L2 regularisation strength (sklearn `C`).
    max_iter: L-BFGS iterations.
    standardize: standardise each feature with train-split statistics before the fit: raw
        activations centred and scaled to unit variance, SAE latents scaled only (they stay
        sparse); --no-standardize fits on the features as they are.
    seed: random state.
    """

    c: float = 1.0
    max_iter: int = 1000
    standardize: bool = True
    seed: int = 0


@dataclass(frozen=True)
class SharedConfig:
    """How `vsae.eval.shared.shared_layer` scores one (store, SAE) pair (Olson et al.).

    Attributes
    ----------
    top_k: top image tokens and top text tokens per latent for the ground truth.
    attributes: image attributes whose values words can name (from attributes.json).
    seed: seed of the random-agreement baseline.
    n_draws: draws of the random-agreement baseline.
    batch_size: rows encoded at a time.
    bins: bins of the histogram of r over [0, 1].
    device: torch device the SAE encodes on: cpu, cuda, cuda:N or mps.
    auroc: a latent is selective for a value in a modality at this AUROC or above
        (`vsae.eval.selectivity`).
    min_fires: ... and when it fires on at least this many of the value's units there.
    alpha: significance level of the shared-latents test against the mismatched-value baseline.
    probe_c: inverse L2 strength of the raw-stream precondition's probe (image rows -> text rows).
    probe_rows: image rows (seeded sample) the precondition's probe trains on.
    """

    top_k: int = 16
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    seed: int = 0
    n_draws: int = 100
    batch_size: int = 4096
    bins: int = 10
    device: str = "cpu"
    auroc: float = 0.8
    min_fires: int = 8
    alpha: float = 0.05
    probe_c: float = 0.1
    probe_rows: int = 3000
