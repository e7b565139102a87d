"""The downstream test of reconstruction quality: splice an SAE's reconstruction into a model,
x -> decode(encode(x)) at a hook point (`vsae.steer.intervene` without edits and without the
error term), and compare its final embeddings and (CLIP) zero-shot accuracy with the original;
where the output is a class distribution -- a classifier's logits (a `python:` / `from_module`
model) or CLIP's zero-shot logits -- also top-1 agreement, top-5 overlap and KL divergence, and
with labels of those classes the loss recovered against zero-ablating the hook
(`vsae.eval.agreement`). The SAE's training rows must fit the splice (`vsae.sae.selection`).

`splice_metrics` is what `vsae eval recon --model M --data D` adds to recon.json under "splice"
(the CLI passes it to `vsae.eval.commands.run_recon`, which never imports steer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vsae.data import iter_batches, open_source
from vsae.errors import VsaeError
from vsae.eval.agreement import output_agreement
from vsae.eval.eval_config import ReconConfig
from vsae.eval.naming import encode_words
from vsae.eval.sampling import describe_sample, spread_sample
from vsae.eval.zeroshot import zero_shot_accuracy
from vsae.models import LoadedModel, capture, load
from vsae.sae.selection import check_splice
from vsae.steer.intervention import intervene


@contextmanager
def splice_reconstruction(lm: LoadedModel, hook: str, sae: nn.Module) -> Iterator[None]:
    """Within the block, the output of `hook` is replaced by `sae.decode(sae.encode(x))` on every
    forward pass of `lm.model` (`vsae.steer.intervene` without edits and without the error term)."""
    with intervene(lm, hook, sae, keep_error=False):
        yield


@torch.no_grad()
def final_embeddings(lm: LoadedModel, inputs: Any) -> torch.Tensor:
    """The model's final embedding (hook `embed`) for one batch of preprocessed inputs."""
    with capture(lm, "embed") as cap:
        lm.run(inputs)
        return cap.output.float().reshape(cap.output.shape[0], -1).clone()


class ZeroAblation(nn.Module):
    """A stand-in SAE whose reconstruction is 0: spliced with `intervene(..., keep_error=False)`
    it zero-ablates the hook (the baseline of the loss recovered)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(z)


@torch.no_grad()
def splice_effect(
    lm: LoadedModel, hook: str, sae: nn.Module, batches: Iterable[Any], ablate: bool = False
) -> dict[str, np.ndarray]:
    """Final embeddings with and without the splice (and with the hook zero-ablated, if
    ``ablate``), and the per-image cosine similarity of the first two."""
    orig, spliced, ablated = [], [], []
    for inputs in batches:
        orig.append(final_embeddings(lm, inputs))
        with splice_reconstruction(lm, hook, sae):
            spliced.append(final_embeddings(lm, inputs))
        if ablate:
            with intervene(lm, hook, ZeroAblation(), keep_error=False):
                ablated.append(final_embeddings(lm, inputs))
    if not orig:
        raise VsaeError("no images for the splice evaluation; give --images")
    e0, e1 = torch.cat(orig), torch.cat(spliced)
    cos = torch.nn.functional.cosine_similarity(e0.double(), e1.double(), dim=1)
    out = {"original": e0.numpy(), "spliced": e1.numpy(), "cosine": cos.numpy()}
    if ablate:
        out["ablated"] = torch.cat(ablated).numpy()
    return out


def output_is_logits(lm: LoadedModel) -> bool:
    """Whether the model's final output is a classifier's logits: a wrapped module (`python:`,
    `from_module`) whose output is [B, C]; timm models load without their head (pooled features)."""
    return lm.family == "module" and "timm_model" not in lm.provenance


def _clip_logits(embeds_ND: np.ndarray, text_CD: np.ndarray) -> np.ndarray:
    """CLIP's zero-shot logits: 100 x cosine of image and class-prompt embeddings (CLIP's trained
    logit scale, clamped at 100; Radford et al. 2021)."""
    img = embeds_ND / np.linalg.norm(embeds_ND, axis=1, keepdims=True).clip(1e-12)
    txt = text_CD / np.linalg.norm(text_CD, axis=1, keepdims=True).clip(1e-12)
    return 100.0 * img.astype(np.float64) @ txt.astype(np.float64).T


def splice_metrics(
    model: str,
    data: str,
    sae: nn.Module,
    hook: str,
    split: str | None = None,
    n_images: int = ReconConfig.n_images,
    batch_size: int = 32,
    prompt: str = ReconConfig.prompt,
    progress: bool = True,
    seed: int = ReconConfig.seed,
    force: bool = False,
) -> dict[str, Any]:
    """Downstream effect of splicing decode(encode(x)) at the SAE's hook, on `n_images` images
    (a seeded sample spanning the source, never its first classes): cosine of the final
    embedding to the original, (CLIP) zero-shot accuracy with and without the splice, and under
    "output" the change of the class distribution (`vsae.eval.agreement.output_agreement`) of a
    classifier's logits or CLIP's zero-shot logits. An SAE trained on other rows than the
    splice's (every token at `hook`) is refused unless `force` (`vsae.sae.selection`)."""
    lm = load(model)
    check_splice(
        getattr(getattr(sae, "cfg", None), "provenance", None),
        lm.resolve(hook).name,
        what=f"the splice into {model}",
        force=force,
        canonical=lambda h: lm.resolve(h).name,
    )
    source = open_source(data, split)
    pick = spread_sample(len(source), n_images, seed)
    sub = dataclasses.replace(
        source, items=tuple(source.items[i] for i in pick), labels=tuple(source.labels[i] for i in pick)
    )
    batches = [b for b in iter_batches(sub, lm.preprocess, 0, len(sub), batch_size) if b.inputs is not None]
    ids = pick[np.concatenate([b.ids for b in batches])] if batches else np.zeros(0, np.int64)
    labels = np.asarray(source.labels)[ids] if len(source.labels) else np.zeros(0, np.int64)
    labelled = bool(source.classes) and labels.size == ids.size and bool((labels >= 0).all())
    clip = lm.family == "clip" and labelled
    ablate = clip or (labelled and output_is_logits(lm))  # the baseline of the loss recovered
    eff = splice_effect(
        lm, hook, sae, tqdm([b.inputs for b in batches], desc="splice", disable=not progress), ablate=ablate
    )
    res: dict[str, Any] = {
        "model": model,
        "hook": hook,
        "data": data,
        "n_images": int(ids.size),
        "images": describe_sample(len(source), n_images, seed),
        "embedding_cosine_mean": float(eff["cosine"].mean()),
        "embedding_cosine_min": float(eff["cosine"].min()),
    }
    res["images"]["classes_covered"] = int(np.unique(labels[labels >= 0]).size)
    if clip:
        lm_text = load(model, tower="text")
        txt = encode_words(lm_text, [c.replace("_", " ") for c in source.classes], prompt)
        res["zero_shot"] = {
            "prompt": prompt,
            "n_classes": len(source.classes),
            "accuracy_original": zero_shot_accuracy(eff["original"], txt, labels),
            "accuracy_spliced": zero_shot_accuracy(eff["spliced"], txt, labels),
        }
        logits = {k: _clip_logits(eff[k], txt) for k in ("original", "spliced", "ablated")}
        res["output"] = {
            "of": "CLIP zero-shot logits (100 x cosine to the class prompts)",
            **output_agreement(logits["original"], logits["spliced"], labels, logits["ablated"]),
        }
    elif output_is_logits(lm) and eff["original"].shape[1] >= 2:
        width = int(eff["original"].shape[1])
        # labels index the classifier's outputs only when it has exactly the data's classes
        ablate = ablate and width == len(source.classes)
        res["output"] = {
            "of": "the model's output as class logits",
            **output_agreement(
                eff["original"],
                eff["spliced"],
                labels if ablate else None,
                eff.get("ablated") if ablate else None,
            ),
        }
        if not ablate:
            res["output"]["labels"] = (
                f"not used: the data's {len(source.classes)} classes are not the model's {width} outputs"
                if labelled
                else "not used: the images have no class labels"
            )
    return res
