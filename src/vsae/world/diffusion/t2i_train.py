"""Train the tiny text-to-image model of the shapes world (DDPM, Ho et al., "Denoising diffusion
probabilistic models"), conditioned on the frozen text encoder of the world CLIP as Stable
Diffusion is on CLIP's (Rombach et al.).

Recipe: v prediction (Salimans & Ho, "Progressive distillation for fast sampling of diffusion
models") with the min-SNR-5 weighting of Hang et al. ("Efficient diffusion training via min-SNR
weighting strategy"), which weights the implied clean-image error by min(SNR, 5) and so teaches the
shapes, as it does for an epsilon model, without the epsilon model's speckle (its clean-image
estimate amplifies the noise error at high noise; docs/diffusion.md), on a cosine noise schedule, the
squared error on the object's pixels weighted 5x over the textured background's, 10% empty
captions so that classifier-free guidance works (Ho & Salimans, "Classifier-free diffusion
guidance"), an EMA of the weights (the EMA is what is saved). Captions are the canonical caption
(60%) or one of the CLIP's training templates (30%). Deterministic for a given seed and torch thread count.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from vsae.errors import VsaeError
from vsae.models.hf import safe_from_pretrained
from vsae.store.safe_io import atomic_write_json
from vsae.train.recipe import TrainRecipe
from vsae.world.captions import caption, training_captions
from vsae.world.diffusion.t2i_model import UNetConfig, build_scheduler, build_unet, fold, x0_estimate
from vsae.world.generate import generate, object_footprint
from vsae.world.training import ParamGroup, WorldTrainConfig, ema_update, fit, seed_everything

if TYPE_CHECKING:
    from collections.abc import Iterator

    from transformers import CLIPTextModel, PreTrainedTokenizerBase

PIPELINE_JSON = "vsae_diffusion.json"


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Training of the tiny text-to-image model.

    Attributes
    ----------
    unet: architecture and noise schedule.
    recipe: AdamW with linear warm-up and cosine decay; its seed seeds the image pool, captions,
        noise and timesteps.
    n_images: size of the train-split pool the batches are drawn from.
    p_canonical, p_empty: probability of the full caption and of the empty caption ("", for
        classifier-free guidance); the rest get a random CLIP training template.
    ema: decay of the exponential moving average of the weights (the saved weights).
    loss: where the MSE is taken: ``sample`` compares the model's estimate of the clean image
        with the clean image (every timestep weighted alike in pixel error, whatever
        ``unet.prediction_type`` is; not for ``epsilon``, whose x0 estimate diverges at high
        noise), ``prediction`` compares the raw output with its target (epsilon / v / x0).
    min_snr: gamma of the min-SNR weighting of the ``prediction`` loss (0 = plain MSE).
    object_weight: weight of the squared error on the object's pixels (its footprint and 1 px
        border, `vsae.world.generate.object_footprint`) relative to the background's 1: the
        shape lives in few pixels, the textured background in most.
    checkpoint_every: also save the EMA weights every this many steps (0 = only at the end).
    sampler_guidance, sampler_eta: the guidance scale and DDIM eta the pipeline samples with by
        default (``vsae_diffusion.json``; not used in training; chosen on held-out captions
        other than the reported ones, docs/diffusion.md).
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    recipe: TrainRecipe = TrainRecipe(
        steps=10000, batch_size=64, lr=1e-3, seed=0, warmup=50, weight_decay=0.01
    )
    n_images: int = 20000
    p_canonical: float = 0.6
    p_empty: float = 0.1
    ema: float = 0.995
    loss: Literal["sample", "prediction"] = "prediction"
    min_snr: float = 5.0
    object_weight: float = 5.0
    checkpoint_every: int = 200
    sampler_guidance: float = 2.0
    sampler_eta: float = 1.0


def batch_captions(
    recs: list[dict[str, Any]], rng: np.random.Generator, cfg: DiffusionTrainConfig
) -> list[str]:
    """The caption of each record for one training batch (canonical / template / empty)."""
    u = rng.random(len(recs))
    templ = training_captions(recs, rng)
    return [
        "" if ui < cfg.p_empty else caption(r) if ui < cfg.p_empty + cfg.p_canonical else t
        for ui, r, t in zip(u, recs, templ)
    ]


def diffusion_loss(
    pred: torch.Tensor,
    x0: torch.Tensor,
    noise: torch.Tensor,
    x_t: torch.Tensor,
    t_N: torch.Tensor,
    sched: Any,
    cfg: DiffusionTrainConfig,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training loss of one batch: the UNet output ``pred`` for ``x_t`` (= ``x0`` noised with
    ``noise`` to timesteps ``t_N`` by ``sched``) against ``cfg.loss``'s target, squared error
    weighted per element by ``weight`` (same shape as ``x0``; None = 1) and averaged; with
    ``cfg.min_snr`` each image's error is scaled by min(SNR_t, gamma) / (SNR_t for epsilon,
    1 for x0, SNR_t + 1 for v): the min-SNR weighting of Hang et al."""
    kind = cfg.unet.prediction_type
    alphas = sched.alphas_cumprod.float()
    if cfg.loss == "sample":
        out, target = x0_estimate(pred, x_t, alphas[t_N], kind), x0
    else:
        out = pred
        target = (
            noise if kind == "epsilon" else x0 if kind == "sample" else sched.get_velocity(x0, noise, t_N)
        )
    if weight is None:
        if cfg.loss == "sample":
            return F.mse_loss(out, target)
        per = F.mse_loss(out, target, reduction="none").mean(dim=(1, 2, 3))
    else:
        per = (weight * (out - target) ** 2).mean(dim=(1, 2, 3))
        if cfg.loss == "sample":
            return per.mean()
    if cfg.min_snr > 0:
        s = alphas[t_N] / (1.0 - alphas[t_N])
        div = s if kind == "epsilon" else torch.ones_like(s) if kind == "sample" else s + 1
        per = per * torch.clamp(s, max=cfg.min_snr) / div
    return per.mean()


@torch.no_grad()
def encode_text(
    text_encoder: CLIPTextModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states [B, T, d], attention mask [B, T]) padded to the tokenizer's max length,
    as Stable Diffusion encodes prompts (the text encoder runs without a padding mask; CLIP's
    causal mask means the real tokens do not see the padding)."""
    enc = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    dev = next(text_encoder.parameters()).device
    hidden = text_encoder(enc["input_ids"].to(dev))[0]
    return hidden, enc["attention_mask"].to(dev)


def _save(
    out: Path,
    unet: Any,
    scheduler: Any,
    text_encoder: CLIPTextModel,
    tokenizer: PreTrainedTokenizerBase,
    cfg: DiffusionTrainConfig,
    extra: dict[str, Any],
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    text_encoder.save_pretrained(out / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(out / "tokenizer")
    meta = {
        "kind": "vsae-world-diffusion",
        "patch": cfg.unet.patch,
        "mask_padding": True,
        "image_size": 32,
        "sampler_guidance": cfg.sampler_guidance,
        "sampler_eta": cfg.sampler_eta,
        "train_config": asdict(cfg),
        **extra,
    }
    atomic_write_json(out / PIPELINE_JSON, meta, indent=2)


def train_diffusion(
    out_dir: str | Path,
    clip_dir: str | Path,
    cfg: DiffusionTrainConfig = DiffusionTrainConfig(),
    progress: bool = True,
) -> dict[str, Any]:
    """Train the UNet on ``cfg.n_images`` train-split images; write the pipeline directory
    (``unet/ scheduler/ text_encoder/ tokenizer/ vsae_diffusion.json``) to ``out_dir``."""
    from transformers import AutoTokenizer, CLIPTextModel

    if cfg.loss == "sample" and (cfg.unet.prediction_type == "epsilon" or cfg.min_snr > 0):
        raise VsaeError(
            "DiffusionTrainConfig.loss='sample' needs unet.prediction_type 'sample' or 'v_prediction' "
            "and min_snr=0; use loss='prediction' for epsilon or min-SNR weighting"
        )
    t0, c0 = time.time(), time.process_time()
    out = Path(out_dir)
    gen = seed_everything(cfg.recipe.seed)
    rng = np.random.default_rng(cfg.recipe.seed)
    text_encoder = (
        safe_from_pretrained(CLIPTextModel, clip_dir, "the text encoder").eval().requires_grad_(False)
    )
    tokenizer = AutoTokenizer.from_pretrained(str(clip_dir))
    unet = build_unet(cfg.unet)
    ema = build_unet(cfg.unet).requires_grad_(False)
    ema.load_state_dict(unet.state_dict())
    sched = build_scheduler(cfg.unet)
    pool = generate("train", cfg.n_images, seed=cfg.recipe.seed)
    recs = [r.to_dict() for r in pool.records]
    x_all = fold(torch.from_numpy(pool.images_NHWC).permute(0, 3, 1, 2).float() / 127.5 - 1.0, cfg.unet.patch)
    w_all = None  # per-pixel loss weights [N, C, h, w] in the folded space, when objects weigh more
    if cfg.object_weight != 1.0:
        foot = torch.from_numpy(object_footprint(pool.codes))[:, None].expand(-1, 3, -1, -1)
        w_all = 1.0 + (cfg.object_weight - 1.0) * fold(foot.contiguous(), cfg.unet.patch)
    log = (out.parent / f".{out.name}.log.jsonl") if out.parent.exists() else None

    def batches() -> Iterator[torch.Tensor]:
        while True:
            yield torch.randint(0, len(x_all), (cfg.recipe.batch_size,), generator=gen)

    def loss_fn(step: int, idx: torch.Tensor) -> torch.Tensor:
        x0 = x_all[idx]
        hidden, mask = encode_text(
            text_encoder, tokenizer, batch_captions([recs[i] for i in idx.tolist()], rng, cfg)
        )
        noise = torch.randn(x0.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (cfg.recipe.batch_size,), generator=gen)
        xt = sched.add_noise(x0, noise, t)
        pred = unet(xt, t, encoder_hidden_states=hidden, encoder_attention_mask=mask).sample
        w = w_all[idx] if w_all is not None else None
        return diffusion_loss(pred, x0, noise, xt, t, sched, cfg, w)

    def after(step: int) -> None:
        ema_update(ema, unet, step, cfg.ema)
        if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.recipe.steps:
            _save(out, ema, sched, text_encoder, tokenizer, cfg, {"steps_done": step + 1})

    unet.train()
    res = fit(
        [ParamGroup(tuple(unet.parameters()), cfg.recipe.weight_decay)],
        batches(),
        loss_fn,
        WorldTrainConfig(cfg.recipe, desc="diffusion"),
        after_step=after,
        log_path=log,
        progress=progress,
    )
    summary = {
        "final_loss": res.mean_loss(50),
        "steps_done": cfg.recipe.steps,
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "torch_threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in ema.parameters()),
    }
    _save(out, ema.eval(), sched, text_encoder, tokenizer, cfg, summary)
    return summary
