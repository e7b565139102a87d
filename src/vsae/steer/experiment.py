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
from vsae.eval.topimages import top_images
from vsae.models import LoadedModel
from vsae.models.families.mllm import LAYOUTS, is_mllm
from vsae.models.hf import image_side
from vsae.models.tokens import as_tokens
from vsae.sae import SAE
from vsae.sae.selection import check_splice
from vsae.steer.config import STEERING_QUESTION, SteerConfig
from vsae.steer.edits import LatentEdit
from vsae.steer.embed import ImageTextEmbedder
from vsae.steer.intervention import intervene
from vsae.steer.mllm import ask, first_word
from vsae.steer.results import BlankImageResult, BlankLatent, SteeredLatent, SteeringResult, SteeringScale
from vsae.steer.score import SteeringScore, latent_embeddings, steering_score
from vsae.steer.summary import write_summary
from vsae.store.safe_io import output_lock

__all__ = [  # SteerConfig and STEERING_QUESTION live in vsae.steer.config; importable from here too
    "STEERING_QUESTION",
    "ImageSet",
    "LatentStats",
    "SteerConfig",
    "default_hook",
    "latent_name",
    "load_images",
    "pooled_latents",
    "run_steering",
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
class LatentStats:
    """Per-image latents and the scale of the hooked activations (to choose a clamp value).

    acts_NF: SAE latents mean-pooled over patch tokens, per image (what the HAI come from).
    max_token_F: each latent's largest activation on any single token.
    mean_token_norm: mean L2 norm of the hooked token activations.
    """

    acts_NF: np.ndarray
    max_token_F: np.ndarray
    mean_token_norm: float


@torch.no_grad()
def pooled_latents(
    lm: LoadedModel, hook: str, sae: SAE, images: list[Image.Image], batch_size: int = 32
) -> LatentStats:
    """SAE latents at ``hook`` mean-pooled over patch tokens per image, with scale statistics."""
    p = next(sae.parameters())
    out: list[np.ndarray] = []
    mx: np.ndarray | None = None
    norm_sum, n_tok = 0.0, 0
    for s in range(0, len(images), batch_size):
        with vsae.models.capture(lm, hook) as cap:
            lm.run(lm.preprocess(images[s : s + batch_size]))
        x_BTd = as_tokens(cap.output)  # a [B, C, H, W] feature map as [B, H*W, C], as extraction
        if x_BTd.ndim != 3:
            raise VsaeError(
                f"hook {hook} gives pooled [B, d] activations; steer at a token-level hook (resid.L)"
            )
        x_BTd = x_BTd[:, lm.n_prefix :]
        B, T, d = x_BTd.shape
        x_Nd = x_BTd.reshape(B * T, d).to(p.device, p.dtype)
        z = sae.encode(x_Nd).float()
        out.append(z.reshape(B, T, -1).mean(1).cpu().numpy())
        m = z.amax(0).cpu().numpy()
        mx = m if mx is None else np.maximum(mx, m)
        norm_sum += float(x_Nd.float().norm(dim=-1).sum())
        n_tok += B * T
    if mx is None:
        raise VsaeError("no images to compute latents on; give at least one image")
    return LatentStats(np.concatenate(out), mx, norm_sum / max(n_tok, 1))


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


def default_hook(lm: LoadedModel) -> str:
    """The vision hidden state the model's projector reads (``vision_feature_layer``, else the
    model type's own: LLaVA -2, Gemma 3 / Idefics3 / SmolVLM the last), as a resid hook."""
    layer = getattr(lm.full_model.config, "vision_feature_layer", None)
    if layer is None:
        layer = LAYOUTS[lm.family].feature_layer if lm.family in LAYOUTS else -2
    if not isinstance(layer, int):
        layer = layer[-1]
    # hidden_states[0] is the embedding output, so hidden_states[i] = output of block i - 1.
    idx = layer % (lm.num_layers + 1)
    if idx == 0:
        raise VsaeError("LLaVA reads the vision embeddings (vision_feature_layer 0); give --hook")
    return f"resid.{idx - 1}"


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
    `vsae.report.steering.write_steering_index` adds the index.html page)."""
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

    # 1. HAI of every latent (mean-pooled over patch tokens) and h_f.
    hai_set = load_images(cfg.hai_images, cfg.n_hai_images, cfg.seed)
    stats = pooled_latents(lm, hook, sae, hai_set.images, cfg.batch_size)
    top = top_images(stats.acts_NF, cfg.hai_k)
    usable = np.flatnonzero(~top.excluded_F)
    if cfg.latents:
        bad = [f for f in cfg.latents if not 0 <= f < sae.cfg.d_sae]
        if bad:
            raise VsaeError(f"latents {bad} out of range: the SAE has {sae.cfg.d_sae} latents")
        latents = np.array(cfg.latents)
    else:
        if len(usable) == 0:
            raise VsaeError("no latent is active on all of its top images; use more --hai-images")
        rng = np.random.default_rng(cfg.seed)
        latents = np.sort(rng.choice(usable, size=min(cfg.n_latents, len(usable)), replace=False))
    hai_emb_ND = sim.images(hai_set.images)

    def score_for(lats: np.ndarray, steered: list[list[str]], base: list[str]) -> SteeringScore:
        h = latent_embeddings(top.indices_Fk[lats], hai_emb_ND)
        ts = torch.stack([sim.texts(row) for row in steered])
        return steering_score(h, ts, sim.texts(base))

    def answers_for(images: list[Image.Image], lats: np.ndarray) -> tuple[list[str], list[list[str]]]:
        base = ask(model, processor, images, cfg.question, cfg.max_new_tokens, cfg.batch_size)
        steered = []
        for f in tqdm(lats, desc="steering", disable=not progress, leave=False):
            edit = LatentEdit(int(f), cfg.op, cfg.value, cfg.tokens)
            with intervene(lm, hook, sae, [edit], pre_zero=cfg.pre_zero):
                steered.append(
                    ask(model, processor, images, cfg.question, cfg.max_new_tokens, cfg.batch_size)
                )
        return base, steered

    # 2. Steering on the test images.
    test = load_images(cfg.images, cfg.n_images, cfg.seed)
    base, steered = answers_for(test.images, latents)
    base_w = [first_word(a) for a in base]
    steered_w = [[first_word(a) for a in row] for row in steered]
    score = score_for(latents, steered_w, base_w)
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
    # 3. Single-image variant: one blank white image, many latents.
    blank_result = None
    if cfg.blank_latents:
        rng = np.random.default_rng(cfg.seed + 1)
        pool = usable if len(usable) else np.arange(sae.cfg.d_sae)
        blats = np.sort(rng.choice(pool, size=min(cfg.blank_latents, len(pool)), replace=False))
        side = image_side(lm.model.config) or 224
        blank = [Image.new("RGB", (side, side), (255, 255, 255))]
        bbase, bsteer = answers_for(blank, blats)
        blank_result = BlankImageResult(
            score=score_for(blats, [[first_word(r[0])] for r in bsteer], [first_word(bbase[0])]),
            baseline_answer=bbase[0],
            latents=tuple(
                BlankLatent(int(f), latent_name(hai_set.records, top.indices_Fk[f]), r[0])
                for f, r in zip(blats, bsteer)
            ),
        )
    result = SteeringResult(
        config=cfg,
        hook=hook,
        llava=lm.provenance,
        sae=str(sae_dir),
        similarity_encoder=str(sim_encoder),
        scale=SteeringScale(
            mean_token_norm=stats.mean_token_norm,
            median_max_token_activation=float(np.median(stats.max_token_F[latents])),
            value=cfg.value,
        ),
        score=score,
        latents=rows,
        test_images=tuple(test.ids),
        blank_image=blank_result,
    )
    if out_dir is not None:
        write_summary(Path(out_dir), result.to_json(), hai_set.images, top, latents)
    return result


def _hook_width(lm: LoadedModel, hook: str) -> int:
    """Width d of the activations at ``hook`` (from a one-image forward pass)."""
    with vsae.models.capture(lm, hook) as cap:
        lm.run(lm.dummy_inputs())
    return int(as_tokens(cap.output).shape[-1])
