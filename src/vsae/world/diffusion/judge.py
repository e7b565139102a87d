"""Read the attributes of (generated) world images with the world's similarity encoder.

The similarity encoder (`vsae.world.train_simenc`) was trained with one linear head per
attribute on its pooled output; the heads are not shipped, so the judge refits them: one
multinomial logistic regression per attribute on the pooled embeddings of real train-split
images (sampled with a seed), on the pooled output concatenated with the mean patch token (on
500 real test images: shape 93.0% vs 90.8% from the pooled output alone). Its accuracy on real
held-out images is the ceiling against which the agreement of generated images with their
prompts is read.

Importing this module registers the world as the diffusion steering experiment's judge
``world`` (`WorldDiffusionJudge`, entry point group ``vsae.diffusion_judges``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vsae.experiments.diffusion_steering.judges import DIFFUSION_JUDGES, AttributeReader
from vsae.models.hf import safe_from_pretrained
from vsae.world.diffusion.silhouette import DRAWN_IOU, read_shapes
from vsae.world.generate import attribute_vocab, generate

if TYPE_CHECKING:
    from vsae.experiments.diffusion_steering.discovery import VocabWord
    from vsae.steer.diffusion_pipeline import DiffusionPipe
    from vsae.steer.steer_config import SamplerConfig

ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "position", "tone", "outline", "background")


@dataclass
class AttributeJudge:
    """Per-attribute linear heads on similarity-encoder embeddings.

    Attributes
    ----------
    simenc_dir: the similarity encoder (default: the shipped one).
    heads: attribute -> (mean [D], scale [D], W [C, D], b [C]): standardise, then a linear head.
    """

    simenc_dir: Path
    heads: dict[str, tuple[np.ndarray, ...]] = field(default_factory=dict)

    _model: Any = None
    _proc: Any = None

    @torch.no_grad()
    def embed(self, images_NHWC: np.ndarray, batch_size: int = 500) -> np.ndarray:
        """float32 [N, 2D]: pooled output and mean patch token of the similarity encoder."""
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModel

        if self._model is None:
            self._model = safe_from_pretrained(
                AutoModel, self.simenc_dir, "the judge's similarity encoder"
            ).eval()
            self._proc = AutoImageProcessor.from_pretrained(str(self.simenc_dir))
        out = []
        for i in range(0, len(images_NHWC), batch_size):
            pil = [Image.fromarray(a) for a in images_NHWC[i : i + batch_size]]
            o = self._model(pixel_values=self._proc(images=pil, return_tensors="pt")["pixel_values"])
            out.append(torch.cat([o.pooler_output, o.last_hidden_state[:, 1:].mean(1)], 1).float().numpy())
        return np.concatenate(out)

    def predict(
        self, images_NHWC: np.ndarray, attributes: tuple[str, ...] = ATTRIBUTES
    ) -> dict[str, np.ndarray]:
        """attribute -> predicted value index [N] (indexes `vsae.world.attribute_vocab(attribute)`)."""
        emb = self.embed(images_NHWC)
        return {a: self.logits(emb, a).argmax(1).astype(np.int64) for a in attributes}

    def logits(self, emb_ND: np.ndarray, attribute: str) -> np.ndarray:
        mean, scale, w, b = self.heads[attribute]
        return ((emb_ND - mean) / scale) @ w.T + b

    def save(self, path: str | Path) -> None:
        """The heads as safetensors (``<attribute>.mean|scale|W|b``)."""
        from safetensors.numpy import save_file

        names = ("mean", "scale", "W", "b")
        save_file(
            {
                f"{a}.{n}": np.ascontiguousarray(v, np.float32)
                for a, h in self.heads.items()
                for n, v in zip(names, h)
            },
            str(path),
            metadata={"simenc": str(self.simenc_dir)},
        )


def load_judge(path: str | Path, simenc_dir: str | Path | None = None) -> AttributeJudge:
    """Heads saved by `AttributeJudge.save` on the similarity encoder at ``simenc_dir``."""
    from safetensors.numpy import load_file

    if simenc_dir is None:
        from vsae.world import shipped_simenc_dir

        simenc_dir = shipped_simenc_dir()
    t = load_file(str(path))
    attrs = sorted({k.split(".")[0] for k in t})
    return AttributeJudge(
        Path(simenc_dir), {a: tuple(t[f"{a}.{n}"] for n in ("mean", "scale", "W", "b")) for a in attrs}
    )


def fit_judge(simenc_dir: str | Path | None = None, n: int = 6000, seed: int = 0) -> AttributeJudge:
    """Fit the heads on ``n`` train-split images (``generate("train", n, seed)``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if simenc_dir is None:
        from vsae.world import shipped_simenc_dir

        simenc_dir = shipped_simenc_dir()
    judge = AttributeJudge(Path(simenc_dir))
    batch = generate("train", n, seed=seed + 7919)  # not the diffusion model's own training pool
    emb = judge.embed(batch.images_NHWC)
    for a in ATTRIBUTES:
        y = batch.labels(a)
        sc = StandardScaler().fit(emb)
        clf = LogisticRegression(C=1.0, max_iter=2000, random_state=seed).fit(sc.transform(emb), y)
        w = np.zeros((len(attribute_vocab(a)), emb.shape[1]))
        b = np.full(len(attribute_vocab(a)), -1e9)  # values absent from the sample are never predicted
        if len(clf.classes_) == 2:  # sklearn keeps one row for two classes
            w[clf.classes_[1]], b[clf.classes_[1]] = clf.coef_[0], clf.intercept_[0]
            w[clf.classes_[0]], b[clf.classes_[0]] = 0.0, 0.0
        else:
            w[clf.classes_], b[clf.classes_] = clf.coef_, clf.intercept_
        judge.heads[a] = (sc.mean_, sc.scale_, w, b)
    return judge


# --- the shapes world as the diffusion steering experiment's ground truth --------------------
WORLD_ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "tone")
"""Attributes the judge reads reliably (>= 93% on real test images): the naming vocabulary."""
JUDGED: tuple[str, ...] = ("shape", "colour", "size")
"""Attributes steering is scored on."""


def world_vocabulary(attributes: Sequence[str] = WORLD_ATTRIBUTES) -> list[VocabWord]:
    """The world's attribute values as words, with the world CLIP's zero-shot style prompts."""
    from vsae.experiments.diffusion_steering.discovery import VocabWord
    from vsae.world.taxonomy import BACKGROUNDS

    bgs = tuple(b for b in BACKGROUNDS if b != "wavy")
    tmpl = {
        "shape": lambda v: (f"a photo of a {v}",),
        "colour": lambda v: (f"a photo of a {v} shape",),
        "size": lambda v: (f"a {v} shape",),
        "tone": lambda v: tuple(f"a {v} {b} background" for b in bgs),
    }
    return [VocabWord(v, tmpl[a](v), a, i) for a in attributes for i, v in enumerate(attribute_vocab(a))]


def world_judge(pipeline: str | Path) -> AttributeJudge:
    """The judge shipped with the world pipeline (``judge.safetensors``), else one fitted now."""
    p = Path(pipeline) / "judge.safetensors"
    return load_judge(p) if p.is_file() else fit_judge()


class WorldDiffusionJudge:
    """The shapes world's ground truth for `vsae.experiments.diffusion_steering` (a
    `DiffusionJudge`): its attribute values, captions, held-out test-split prompts, the
    similarity-encoder judge, the silhouette reading (`vsae.world.diffusion.silhouette`) and the
    shipped tiny pipeline, text SAE and world CLIP."""

    judged: tuple[str, ...] = JUDGED
    named: tuple[str, ...] = WORLD_ATTRIBUTES
    drawn_iou: float = DRAWN_IOU

    def values(self, attribute: str) -> Sequence[str]:
        return attribute_vocab(attribute)

    def vocabulary(self) -> list[VocabWord]:
        return world_vocabulary(self.named)

    def naming_clip(self) -> str:
        from vsae.world import shipped_clip_dir

        return str(shipped_clip_dir())

    def default_pipeline(self) -> str:
        from vsae.world.diffusion import shipped_diffusion_dir

        return str(shipped_diffusion_dir())

    def default_sae(self) -> str:
        from vsae.world.diffusion import shipped_text_sae_dir

        return str(shipped_text_sae_dir())

    def captions(self, n: int, seed: int) -> list[str]:
        from vsae.world.diffusion.text_sae import world_captions

        return world_captions(n, seed)

    def heldout(self, n: int, seed: int) -> tuple[list[str], dict[str, np.ndarray]]:
        from vsae.world.diffusion.generation_quality import heldout_prompts

        prompts, batch = heldout_prompts(n, seed)
        return prompts, {a: batch.labels(a) for a in self.judged}

    def reader(self, pipeline: str) -> AttributeJudge:
        return world_judge(pipeline)

    def generation(
        self, pipe: DiffusionPipe, reader: AttributeReader, n: int, seed: int, sampler: SamplerConfig
    ) -> dict[str, Any]:
        from vsae.world.diffusion.generation_quality import generation_accuracy

        return generation_accuracy(pipe, reader, n=n, seed=seed, sampler=sampler)

    def silhouette_iou(self, images_NHWC: np.ndarray) -> np.ndarray:
        return read_shapes(images_NHWC)[1]


DIFFUSION_JUDGES.register("world")(WorldDiffusionJudge())
