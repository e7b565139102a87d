"""The MLLM steering experiment of Pach et al. ("Sparse autoencoders learn monosemantic features
in vision-language models", sec. steering): clamp one SAE latent of LLaVA's vision encoder on
every token, ask "What is shown in this image? Use exactly one word!" and compare the answer
with what the latent stands for.

For each latent f: its highest-activating images (HAI, from mean-pooled latent activations over
patch tokens on ``hai_images``) give ``h_f``; the model answers on ``images`` with and without
the clamp; the steering score (`vsae.steer.score`) compares the answers' first words with
``h_f``. The single-image variant asks about one blank white image for many latents.
Works unchanged on the world's tiny LLaVA and on ``llava-hf/llava-1.5-7b-hf`` (see docs/steer.md),
and on the other multimodal model types of `vsae.models.families.mllm` (LLaVA-NeXT, Gemma 3,
Idefics3 ...): the SAE is spliced into their vision tower.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

import vsae.models
import vsae.sae
from vsae.data import load_image, open_source
from vsae.errors import VsaeError
from vsae.eval.topimages import TopImages, top_images
from vsae.experiments.mllm_steering.mllm_artefacts import write_summary
from vsae.experiments.mllm_steering.mllm_config import STEERING_QUESTION, SteerConfig
from vsae.experiments.mllm_steering.mllm_result import (
    BlankImageResult,
    BlankLatent,
    SteeredLatent,
    SteeringResult,
    SteeringScale,
)
from vsae.models import LoadedModel
from vsae.models.families.mllm import LAYOUTS, is_mllm
from vsae.models.hf import image_side
from vsae.sae import SAE
from vsae.sae.selection import check_splice
from vsae.steer.edits import LatentEdit
from vsae.steer.embed import ImageTextEmbedder
from vsae.steer.intervention import intervene
from vsae.steer.mllm import LatentStats, ask, default_hook, first_word, pooled_latents
from vsae.steer.mllm import hook_width as _hook_width
from vsae.steer.score import SteeringScore, latent_embeddings, steering_score
from vsae.store.safe_io import output_lock

# SteerConfig and STEERING_QUESTION live in mllm_config, LatentStats, default_hook and
# pooled_latents in vsae.steer.mllm; importable from here too
__all__ = [
    "STEERING_QUESTION",
    "ImageSet",
    "LatentImages",
    "LatentStats",
    "SteerConfig",
    "SteeringModels",
    "default_hook",
    "discover_top_images",
    "latent_name",
    "load_images",
    "load_models",
    "pick_latents",
    "pooled_latents",
    "run_steering",
    "steer_blank_image",
    "steer_test_images",
]


@dataclass(frozen=True)
class ImageSet:
    """Images with optional world records (for naming latents) and a display id per image."""

    images: list[Image.Image]
    ids: list[str]
    records: list[dict[str, Any]] | None


def load_images(spec: str, n: int, seed: int = 0) -> ImageSet:
    """A registered source (``world:<split>``: its first n images, with their records) or a
    folder / list file of images (n images chosen at random with ``seed``), via vsae.data."""
    src = open_source(spec, n=n, seed=seed)
    if len(src) == 0:
        raise VsaeError(f"no images in {spec}")
    if src.images is not None:  # made in memory by a registered scheme
        k = min(n, len(src))
        recs = list(src.records[:k]) if src.records is not None else None
        return ImageSet(list(src.images[:k]), list(src.items[:k]), recs)
    pick = np.sort(np.random.default_rng(seed).permutation(len(src))[:n])
    return ImageSet([load_image(src.items[i]) for i in pick], [str(src.items[i]) for i in pick], None)


@dataclass(frozen=True)
class SteeringModels:
    """What one run loads: the MLLM, its processor, the SAE spliced at ``hook`` and the
    image/text encoder that embeds h_f and the answers."""

    lm: LoadedModel
    model: Any  # the full generative model (lm.full_model, in eval mode on the device)
    processor: Any
    sae: SAE
    hook: str
    sim: ImageTextEmbedder


@dataclass(frozen=True)
class LatentImages:
    """The highest-activating images (HAI) of every latent.

    hai: the HAI image set; stats: its pooled latents and scale; top: each latent's top images;
    usable_F: latents active on all of their top images; emb_ND: the HAI images' embeddings.
    """

    hai: ImageSet
    stats: LatentStats
    top: TopImages
    usable_F: np.ndarray
    emb_ND: torch.Tensor


def latent_name(records: list[dict[str, Any]] | None, idx: np.ndarray) -> str:
    """A name from the ground truth of a latent's top world images: the most common shape and
    colour with their shares ("star 88% / red 50%"); empty for non-world images."""
    if not records:
        return ""
    idx = idx[idx >= 0]
    parts = []
    for attr in ("shape", "colour"):
        ((v, c),) = Counter(records[i][attr] for i in idx).most_common(1)
        parts.append(f"{v} {100 * c / len(idx):.0f}%")
    return " / ".join(parts)


def load_models(
    llava: str | Path, sae_dir: str | Path, sim_encoder: str | Path, cfg: SteerConfig, device: str, dtype: str
) -> SteeringModels:
    """Load the MLLM and the SAE, check that the SAE fits the hook (provenance and width), load
    the similarity encoder."""
    from transformers import AutoProcessor  # heavy: only when the experiment runs

    lm = vsae.models.load(str(llava), device=device, dtype=dtype)
    if not is_mllm(lm.family) or lm.tower != "vision":
        raise VsaeError(
            f"{llava} is a {lm.family} model, not a multimodal LLM; give a LLaVA or one of {', '.join(LAYOUTS)}"
        )
    model = lm.full_model.to(device).eval()
    processor = AutoProcessor.from_pretrained(str(llava))
    sae = vsae.sae.load(str(sae_dir)).eval().to(device)
    hook = cfg.hook or default_hook(lm)
    check_splice(
        sae.cfg.provenance,
        lm.resolve(hook).name,
        sae=str(sae_dir),
        what="steering",
        force=cfg.force,
        canonical=lambda h: lm.resolve(h).name,
    )
    d_model = _hook_width(lm, hook)
    if sae.cfg.d_in != d_model:
        raise VsaeError(
            f"the SAE takes d_in={sae.cfg.d_in} but {hook} of {llava} has width {d_model}; give the matching SAE"
        )
    sim = ImageTextEmbedder(sim_encoder, device=device)
    return SteeringModels(lm, model, processor, sae, hook, sim)


def discover_top_images(m: SteeringModels, cfg: SteerConfig) -> LatentImages:
    """Step 1: the HAI of every latent (mean-pooled over patch tokens), whose embeddings give h_f."""
    hai_set = load_images(cfg.hai_images, cfg.n_hai_images, cfg.seed)
    stats = pooled_latents(m.lm, m.hook, m.sae, hai_set.images, cfg.batch_size)
    top = top_images(stats.acts_NF, cfg.hai_k)
    usable = np.flatnonzero(~top.excluded_F)
    hai_emb_ND = m.sim.images(hai_set.images)
    return LatentImages(hai_set, stats, top, usable, hai_emb_ND)


def pick_latents(cfg: SteerConfig, found: LatentImages, d_sae: int) -> np.ndarray:
    """The latents to steer: the config's, else ``n_latents`` seeded ones active on all their HAI."""
    if cfg.latents:
        bad = [f for f in cfg.latents if not 0 <= f < d_sae]
        if bad:
            raise VsaeError(f"latents {bad} out of range: the SAE has {d_sae} latents")
        latents = np.array(cfg.latents)
    else:
        usable = found.usable_F
        if len(usable) == 0:
            raise VsaeError("no latent is active on all of its top images; use more --hai-images")
        rng = np.random.default_rng(cfg.seed)
        latents = np.sort(rng.choice(usable, size=min(cfg.n_latents, len(usable)), replace=False))
    return latents


def answers_for(
    m: SteeringModels, cfg: SteerConfig, images: list[Image.Image], lats: np.ndarray, progress: bool
) -> tuple[list[str], list[list[str]]]:
    """The unsteered answers on ``images`` and, per latent, the answers with that latent edited."""

    lm, model, processor, sae, hook = m.lm, m.model, m.processor, m.sae, m.hook
    base = ask(model, processor, images, cfg.question, cfg.max_new_tokens, cfg.batch_size)
    steered = []
    for f in tqdm(lats, desc="steering", disable=not progress, leave=False):
        edit = LatentEdit(int(f), cfg.op, cfg.value, cfg.tokens)
        with intervene(lm, hook, sae, [edit], pre_zero=cfg.pre_zero):
            steered.append(ask(model, processor, images, cfg.question, cfg.max_new_tokens, cfg.batch_size))
    return base, steered


def score_for(
    m: SteeringModels, found: LatentImages, lats: np.ndarray, steered: list[list[str]], base: list[str]
) -> SteeringScore:
    """The steering score of the answers' first words against h_f of each latent (METRICS.md)."""
    top, hai_emb_ND, sim = found.top, found.emb_ND, m.sim
    h = latent_embeddings(top.indices_Fk[lats], hai_emb_ND)
    ts = torch.stack([sim.texts(row) for row in steered])
    return steering_score(h, ts, sim.texts(base))


def steer_test_images(
    m: SteeringModels, cfg: SteerConfig, found: LatentImages, latents: np.ndarray, progress: bool
) -> tuple[ImageSet, SteeringScore, tuple[SteeredLatent, ...]]:
    """Step 2: each latent steered on the test images; the score and one row per latent."""
    test = load_images(cfg.images, cfg.n_images, cfg.seed)
    base, steered = answers_for(m, cfg, test.images, latents, progress)
    base_w = [first_word(a) for a in base]
    steered_w = [[first_word(a) for a in row] for row in steered]
    score = score_for(m, found, latents, steered_w, base_w)
    hai_set, top, stats = found.hai, found.top, found.stats
    rows = tuple(
        SteeredLatent(
            latent=int(f),
            name=latent_name(hai_set.records, top.indices_Fk[f]),
            top_images=tuple(hai_set.ids[i] for i in top.indices_Fk[f] if i >= 0),
            top_values=tuple(float(v) for v in top.values_Fk[f]),
            max_pooled_activation=float(stats.acts_NF[:, f].max()),
            max_token_activation=float(stats.max_token_F[f]),
            answers_steered=tuple(steered[j]),
            answers_baseline=tuple(base),
            score_steered=float(score.steered_L[j]),
            score_baseline=float(score.baseline_L[j]),
        )
        for j, f in enumerate(latents)
    )
    return test, score, rows


def steer_blank_image(
    m: SteeringModels, cfg: SteerConfig, found: LatentImages, progress: bool
) -> BlankImageResult | None:
    """Step 3, the single-image variant: one blank white image, ``blank_latents`` latents (None: skipped)."""
    if not cfg.blank_latents:
        return None
    hai_set, top, usable, lm, sae = found.hai, found.top, found.usable_F, m.lm, m.sae
    rng = np.random.default_rng(cfg.seed + 1)
    pool = usable if len(usable) else np.arange(sae.cfg.d_sae)
    blats = np.sort(rng.choice(pool, size=min(cfg.blank_latents, len(pool)), replace=False))
    side = image_side(lm.model.config) or 224
    blank = [Image.new("RGB", (side, side), (255, 255, 255))]
    bbase, bsteer = answers_for(m, cfg, blank, blats, progress)
    return BlankImageResult(
        score=score_for(m, found, blats, [[first_word(r[0])] for r in bsteer], [first_word(bbase[0])]),
        baseline_answer=bbase[0],
        latents=tuple(
            BlankLatent(int(f), latent_name(hai_set.records, top.indices_Fk[f]), r[0])
            for f, r in zip(blats, bsteer)
        ),
    )


def run_steering(
    llava: str | Path,
    sae_dir: str | Path,
    sim_encoder: str | Path,
    cfg: SteerConfig = SteerConfig(),
    out_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
) -> SteeringResult:
    """Run the experiment; returns its `SteeringResult` (and writes results.json, scores.png and
    the HAI strips into ``out_dir`` when given, holding its `output_lock`;
    `mllm_report.write_steering_index` adds the index.html page)."""
    args = (llava, sae_dir, sim_encoder, cfg, out_dir, device, dtype, progress)
    if out_dir is None:
        return _run_steering(*args)
    with output_lock(out_dir):
        return _run_steering(*args)


def _run_steering(
    llava: str | Path,
    sae_dir: str | Path,
    sim_encoder: str | Path,
    cfg: SteerConfig,
    out_dir: str | Path | None,
    device: str,
    dtype: str,
    progress: bool,
) -> SteeringResult:
    m = load_models(llava, sae_dir, sim_encoder, cfg, device, dtype)
    found = discover_top_images(m, cfg)
    latents = pick_latents(cfg, found, m.sae.cfg.d_sae)
    test, score, rows = steer_test_images(m, cfg, found, latents, progress)
    result = SteeringResult(
        config=cfg,
        hook=m.hook,
        llava=m.lm.provenance,
        sae=str(sae_dir),
        similarity_encoder=str(sim_encoder),
        scale=SteeringScale(
            mean_token_norm=found.stats.mean_token_norm,
            median_max_token_activation=float(np.median(found.stats.max_token_F[latents])),
            value=cfg.value,
        ),
        score=score,
        latents=rows,
        test_images=tuple(test.ids),
        blank_image=steer_blank_image(m, cfg, found, progress),
    )
    if out_dir is not None:
        write_summary(Path(out_dir), result.to_json(), found.hai.images, found.top, latents)
    return result
