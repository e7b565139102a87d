"""The tiny text-to-image model of the shapes world: a `diffusers.UNet2DConditionModel`
conditioned by cross-attention on the hidden states of the world CLIP's text encoder, exactly as
Stable Diffusion is conditioned on CLIP's (Rombach et al., "High-resolution image synthesis with
latent diffusion models").

Where Stable Diffusion denoises VAE latents, the tiny model denoises *folded pixels*: the 32x32
RGB image in [-1, 1] with each ``patch`` x ``patch`` block folded into channels
(`torch.nn.functional.pixel_unshuffle`; patch 2: [3, 32, 32] -> [12, 16, 16]). The fold is
lossless and has no parameters and makes the UNet ``patch**2`` times cheaper than one on raw
pixels, which is what lets it train on a CPU core.

The shipped directory has Stable Diffusion's layout minus ``vae/``:
``unet/`` ``scheduler/`` ``text_encoder/`` ``tokenizer/`` and ``vsae_diffusion.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vsae.errors import VsaeError
from vsae.world.generate import IMAGE_SIZE

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the tiny UNet and its noise schedule.

    Attributes
    ----------
    patch: fold factor (pixels per side folded into channels; the UNet sees ``32 / patch``).
    channels: ``block_out_channels``, one per resolution (patch 4: 8x8 and 4x4).
    cross_attention: per resolution, whether its blocks cross-attend to the text (the middle
        block always does).
    layers_per_block: ResNet layers per down block (up blocks get one more).
    heads: attention heads of the cross-attention transformers (and of the text pooling).
    pooled_text: also add an attention-pooled embedding of the text hidden states to the
        timestep embedding, so that every ResNet block sees the whole prompt (Imagen, Saharia
        et al. 2022; DeepFloyd IF; diffusers ``addition_embed_type="text"``). The UNet still
        reads only ``encoder_hidden_states``, so generation and steering are unchanged.
    cross_attention_dim: width of the text hidden states (the world CLIP's text width).
    train_timesteps: DDPM timesteps; the schedule is ``squaredcos_cap_v2`` (Nichol & Dhariwal).
    prediction_type: what the UNet outputs: ``v_prediction`` (v = sqrt(a) eps - sqrt(1 - a) x0,
        Salimans & Ho; under min-SNR weighting it draws the shapes on the cleanest backgrounds,
        docs/diffusion.md), ``epsilon`` (the noise, as Stable Diffusion 1.x) or ``sample`` (the
        clean image x0).
    """

    patch: int = 4
    channels: tuple[int, ...] = (64, 96)
    cross_attention: tuple[bool, ...] = (False, True)
    layers_per_block: int = 1
    heads: int = 4
    pooled_text: bool = True
    cross_attention_dim: int = 64
    train_timesteps: int = 1000
    prediction_type: Literal["sample", "epsilon", "v_prediction"] = "v_prediction"


def build_unet(cfg: UNetConfig) -> Any:
    """A randomly initialised `UNet2DConditionModel` over folded 32x32 RGB pixels, one block per
    resolution (cross-attention where ``cfg.cross_attention`` says, and in the middle block).
    Typed ``Any``, as diffusers' models are to the type checker."""
    from diffusers import UNet2DConditionModel

    if len(cfg.cross_attention) != len(cfg.channels):
        raise VsaeError(
            f"UNetConfig.cross_attention has {len(cfg.cross_attention)} entries for "
            f"{len(cfg.channels)} resolutions; give one flag per entry of channels"
        )
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in cfg.cross_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(cfg.cross_attention))
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // cfg.patch,
        in_channels=3 * cfg.patch**2,
        out_channels=3 * cfg.patch**2,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=down,
        up_block_types=up,
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.heads,
        norm_num_groups=8,
        addition_embed_type="text" if cfg.pooled_text else None,
        addition_embed_type_num_heads=cfg.heads,
    )


def build_scheduler(cfg: UNetConfig) -> Any:
    """The training noise schedule (a `DDPMScheduler`); sampling uses DDIM on the same config
    (training is unaffected by the spacing). An x0 or v model samples with ``trailing`` spacing,
    from the last timestep (Lin et al., "Common diffusion noise schedules and sample steps are
    flawed"); an epsilon model with Stable Diffusion's ``leading`` spacing and offset 1, whose
    first step is t = 951 for 20 steps: at t = 999 the cosine schedule leaves sqrt(alpha_bar)
    = 5e-5, so the x0 implied by the predicted noise is the noise's error amplified 20000x, and
    the clipped garbage stays in the image as speckle (sqrt(alpha_bar) = 0.075 at t = 951)."""
    from diffusers import DDPMScheduler

    eps = cfg.prediction_type == "epsilon"
    return DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type=cfg.prediction_type,
        clip_sample=True,
        timestep_spacing="leading" if eps else "trailing",
        steps_offset=1,  # used by `leading` only; diffusers warns on every sampler built without it
    )


def x0_estimate(
    pred: torch.Tensor, x_t: torch.Tensor, alpha_bar_N: torch.Tensor, prediction_type: str
) -> torch.Tensor:
    """The clean image implied by the UNet's output at noise level ``alpha_bar_N`` [N]
    (``x_t = sqrt(a) x0 + sqrt(1 - a) eps``): x0 itself, ``sqrt(a) x_t - sqrt(1 - a) v``, or
    ``(x_t - sqrt(1 - a) eps) / sqrt(a)``, as the DDIM step computes it."""
    a = alpha_bar_N.reshape(-1, *([1] * (x_t.ndim - 1)))
    if prediction_type == "sample":
        return pred
    if prediction_type == "v_prediction":
        return a.sqrt() * x_t - (1 - a).sqrt() * pred
    if prediction_type == "epsilon":
        return (x_t - (1 - a).sqrt() * pred) / a.sqrt()
    raise VsaeError(f"unknown prediction_type {prediction_type!r}; use sample, v_prediction or epsilon")


def fold(images_N3HW: torch.Tensor, patch: int) -> torch.Tensor:
    """Pixels in [-1, 1] [N, 3, H, W] -> the UNet's sample space [N, 3 p^2, H/p, W/p]."""
    import torch.nn.functional as F

    return F.pixel_unshuffle(images_N3HW, patch) if patch > 1 else images_N3HW


def unfold(sample_NCHW: torch.Tensor, patch: int) -> torch.Tensor:
    """Inverse of `fold`."""
    import torch.nn.functional as F

    return F.pixel_shuffle(sample_NCHW, patch) if patch > 1 else sample_NCHW
