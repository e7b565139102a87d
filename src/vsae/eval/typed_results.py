"""Typed results of the `vsae eval` commands (`vsae.eval.commands.run_<command>`).

Each report holds what one command measured; ``to_json()`` is exactly what the command writes as
``<out>/<command>.json`` (keys documented in docs/eval.md; read by the CLI, the demo and tests).
Per-latent arrays stay numpy until ``to_json`` (via `vsae.eval.write_json.jsonable` when written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vsae.eval.monosemanticity import MSResult, summarize_ms
from vsae.eval.recon import ReconResult
from vsae.eval.topimages import TopImages


@dataclass(frozen=True)
class ReconReport:
    """`vsae eval recon`: reconstruction metrics of an SAE on a held-out store.

    Attributes
    ----------
    acts: the store evaluated.
    sae: the SAE run directory.
    rows: how the rows were sampled (`vsae.eval.sampling.describe_sample`).
    recon: the metrics (MSE, FVU, L0, firing counts).
    splice: the downstream splice effect (`vsae.steer.reconstruction.splice_metrics`), or None.
    """

    acts: str
    sae: str
    rows: dict[str, Any]
    recon: ReconResult
    splice: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """recon.json."""
        out: dict[str, Any] = {"acts": self.acts, "sae": self.sae, "rows": self.rows, **self.recon.summary()}
        if self.splice is not None:
            out["splice"] = self.splice
        return out


@dataclass(frozen=True)
class MSKind:
    """The MS of one kind of unit (SAE latents or raw neurons).

    Attributes
    ----------
    source: where the units came from ({"acts": ..., "sae": ...} or {"latents": ...}).
    pooling: how token rows became one row per image.
    result: the per-unit scores.
    """

    source: dict[str, str]
    pooling: str
    result: MSResult

    def to_json(self) -> dict[str, Any]:
        """The kind's entry of ms.json."""
        return {**self.source, "pooling": self.pooling, **summarize_ms(self.result)}


@dataclass(frozen=True)
class MSReport:
    """`vsae eval ms`: monosemanticity of SAE latents and/or raw neurons (Pach et al.).

    Attributes
    ----------
    embeddings: the similarity embeddings (a store or a file).
    embed_model: the model that computed them, when the command did (else None).
    kinds: "sae" and/or "raw" -> their scores, in the order scored.
    baseline: mean pairwise cosine of the embeddings of the scored images
        (`vsae.eval.monosemanticity.embedding_baseline`): the MS of a unit that fires equally
        on every image, the level an MS is read against.
    """

    embeddings: str
    embed_model: str | None
    kinds: dict[str, MSKind]
    baseline: float | None = None

    def to_json(self) -> dict[str, Any]:
        """ms.json."""
        out: dict[str, Any] = {
            "embeddings": self.embeddings,
            "embed_model": self.embed_model,
            "embedding_baseline": self.baseline,
        }
        out.update({name: k.to_json() for name, k in self.kinds.items()})
        out["per_image_activation"] = {name: k.pooling for name, k in self.kinds.items()}
        return out


@dataclass(frozen=True)
class TopImagesReport:
    """`vsae eval top-images`: HAI_k per latent (written to ``file`` beside top_images.json).

    Attributes
    ----------
    source: where the latents came from ({"acts": ..., "sae": ...} or {"latents": ...}).
    k: top images per latent.
    pooling: how token rows became one row per image.
    n_images: images ranked.
    top: the top images (indices into the ranked images) and values.
    file: the safetensors file holding them as image ids of the store.
    """

    source: dict[str, str]
    k: int
    pooling: str
    n_images: int
    top: TopImages
    file: str = "top_images.safetensors"

    def to_json(self) -> dict[str, Any]:
        """top_images.json."""
        ex = self.top.excluded_F
        return {
            **self.source,
            "k": self.k,
            "pooling": self.pooling,
            "n_images": self.n_images,
            "n_latents": int(ex.size),
            "n_excluded_worst_zero": int(ex.sum()),
            "worst_value_mean": float(self.top.worst_F[~ex].mean()) if (~ex).any() else float("nan"),
            "file": self.file,
        }


@dataclass(frozen=True)
class UniquenessReport:
    """`vsae eval uniqueness`: Jaccard overlap of the latents' top-image sets.

    Attributes
    ----------
    top_images: the top-images file read.
    counts: `vsae.eval.topimages.jaccard_pair_counts`.
    """

    top_images: str
    counts: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """uniqueness.json."""
        return {"top_images": self.top_images, **self.counts}


@dataclass(frozen=True)
class HierarchyReport:
    """`vsae eval hierarchy`: LCA depth per Matryoshka group and the ontology figures.

    Attributes
    ----------
    top_images: the top-images file read.
    taxonomy: where the taxonomy came from.
    n_classes: classes occurring among the top images.
    depth_per_group: per group, its mean LCA depth and counts (`depth_per_group`).
    latent_depth_rounded, latent_depth_majority: per latent, its depth by each rule (-1: not scored).
    ontology: `vsae.eval.hierarchy.ontology_report`.
    """

    top_images: str
    taxonomy: str
    n_classes: int
    depth_per_group: list[dict[str, Any]]
    latent_depth_rounded: np.ndarray
    latent_depth_majority: np.ndarray
    ontology: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """hierarchy.json."""
        return {
            "top_images": self.top_images,
            "taxonomy": self.taxonomy,
            "n_classes": self.n_classes,
            "depth_per_group": self.depth_per_group,
            "n_latents_scored": int((self.latent_depth_rounded >= 0).sum()),
            "latent_depth_rounded": self.latent_depth_rounded,
            "latent_depth_majority": self.latent_depth_majority,
            "ontology": self.ontology,
        }


@dataclass(frozen=True)
class ProbeReport:
    """`vsae eval probe`: probe accuracy on SAE latents vs raw activations (Olson et al.).

    Attributes
    ----------
    train: the train split's store.
    evals: evaluation split name -> its store.
    sae: the SAE run directory.
    accuracy: `vsae.eval.probe.compare_probes`.
    standardization: how the features were scaled before the fit (`vsae.eval.probe.standardization`).
    """

    train: str
    evals: dict[str, str]
    sae: str
    accuracy: dict[str, Any]
    standardization: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        """probe.json."""
        return {
            "train": self.train,
            "evals": self.evals,
            "sae": self.sae,
            "accuracy": self.accuracy,
            "standardization": self.standardization,
        }


@dataclass(frozen=True)
class OODReport:
    """`vsae eval ood`: OOD detection by reconstruction error, latent sum and latent max.

    Attributes
    ----------
    in_distribution: the in-distribution store.
    sae: the SAE run directory.
    pooling: how token rows became one score per image.
    splits: OOD split name -> {"path", "n_images", per score: AUROC, FPR@95%TPR}.
    n_in_distribution: in-distribution images.
    """

    in_distribution: str
    sae: str
    pooling: str
    splits: dict[str, dict[str, Any]]
    n_in_distribution: int

    def to_json(self) -> dict[str, Any]:
        """ood.json."""
        return {
            "in_distribution": self.in_distribution,
            "sae": self.sae,
            "pooling": self.pooling,
            "splits": self.splits,
            "n_in_distribution": self.n_in_distribution,
        }


@dataclass(frozen=True)
class NamesReport:
    """`vsae eval names`: a vocabulary word per latent (Olson et al.'s attribute discovery).

    Attributes
    ----------
    prompt: the prompt template the words were embedded with.
    n_words: vocabulary size.
    names: per latent, its word (None: not named).
    scores: per latent, the match score of its word.
    checked: whether names were checked against a table (then the fields below are written).
    agreement: the attribute agreement, or None without an attributes.json.
    agreement_note: why the agreement is missing (only when it is).
    class_match: the per-class name agreement.
    """

    prompt: str
    n_words: int
    names: list[str | None]
    scores: np.ndarray  # [F] float, NaN where not named (null in names.json)
    checked: bool = False
    agreement: dict[str, Any] | None = None
    agreement_note: str | None = None
    class_match: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """names.json."""
        out: dict[str, Any] = {
            "prompt": self.prompt,
            "n_words": self.n_words,
            "names": self.names,
            "scores": self.scores,
        }
        if self.checked:
            out["agreement"] = self.agreement
            if self.agreement_note is not None:
                out["agreement_note"] = self.agreement_note
            out["class_match"] = self.class_match
        return out
