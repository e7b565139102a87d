"""The downstream test of reconstruction quality: splice an SAE's reconstruction into a model,
x -> decode(encode(x)) at a hook point (`vsae.steer.intervene` without edits and without the
error term), and compare its final embeddings and (CLIP) zero-shot accuracy with the original.

`splice_metrics` is what `vsae eval recon --model M --data D` adds to recon.json under "splice"
(the CLI passes it to `vsae.eval.pipeline.run_recon`, which never imports steer)."""

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
from vsae.eval.config import ReconConfig
from vsae.eval.naming import encode_words
from vsae.eval.sampling import describe_sample, spread_sample
from vsae.eval.zeroshot import zero_shot_accuracy
from vsae.models import LoadedModel, capture, load
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


@torch.no_grad()
def splice_effect(
    lm: LoadedModel, hook: str, sae: nn.Module, batches: Iterable[Any]
) -> dict[str, np.ndarray]:
    """Final embeddings with and without the splice, and their per-image cosine similarity."""
    orig, spliced = [], []
    for inputs in batches:
        orig.append(final_embeddings(lm, inputs))
        with splice_reconstruction(lm, hook, sae):
            spliced.append(final_embeddings(lm, inputs))
    if not orig:
        raise VsaeError("no images for the splice evaluation; give --images")
    e0, e1 = torch.cat(orig), torch.cat(spliced)
    cos = torch.nn.functional.cosine_similarity(e0.double(), e1.double(), dim=1)
    return {"original": e0.numpy(), "spliced": e1.numpy(), "cosine": cos.numpy()}


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
) -> dict[str, Any]:
    """Downstream effect of splicing decode(encode(x)) at the SAE's hook, on `n_images` images
    (a seeded sample spanning the source, never its first classes): cosine of the final
    embedding to the original and (CLIP) zero-shot accuracy with and without the splice."""
    lm = load(model)
    source = open_source(data, split)
    pick = spread_sample(len(source), n_images, seed)
    sub = dataclasses.replace(
        source, items=tuple(source.items[i] for i in pick), labels=tuple(source.labels[i] for i in pick)
    )
    batches = [b for b in iter_batches(sub, lm.preprocess, 0, len(sub), batch_size) if b.inputs is not None]
    ids = pick[np.concatenate([b.ids for b in batches])] if batches else np.zeros(0, np.int64)
    eff = splice_effect(lm, hook, sae, tqdm([b.inputs for b in batches], desc="splice", disable=not progress))
    res: dict[str, Any] = {
        "model": model,
        "hook": hook,
        "data": data,
        "n_images": int(ids.size),
        "images": describe_sample(len(source), n_images, seed),
        "embedding_cosine_mean": float(eff["cosine"].mean()),
        "embedding_cosine_min": float(eff["cosine"].min()),
    }
    labels = np.asarray(source.labels)[ids] if len(source.labels) else np.zeros(0)
    res["images"]["classes_covered"] = int(np.unique(labels[labels >= 0]).size)
    if lm.family == "clip" and source.classes and (labels >= 0).all():
        lm_text = load(model, tower="text")
        txt = encode_words(lm_text, [c.replace("_", " ") for c in source.classes], prompt)
        res["zero_shot"] = {
            "prompt": prompt,
            "n_classes": len(source.classes),
            "accuracy_original": zero_shot_accuracy(eff["original"], txt, labels),
            "accuracy_spliced": zero_shot_accuracy(eff["spliced"], txt, labels),
        }
    return res
