"""The tiny text-to-image model of the shapes world: a `diffusers.UNet2DConditionModel`
conditioned by cross-attention on the hidden states of the world CLIP's text encoder, exactly as
Stable Diffusion is conditioned on CLIP's (Rombach et al., "High-resolution image synthesis with
latent diffusion models").

Where Stable Diffusion denoises VAE latents, the tiny model denoises *folded pixels*: the 32x32
RGB image in [-1, 1] with each 4x4 patch folded into channels (`torch.nn.functional.pixel_unshuffle`,
[3, 32, 32] -> [48, 8, 8]). The fold is lossless and has no parameters, and it makes the UNet 16x
cheaper than one on 32x32 pixels, which is what lets it train in tens of minutes on a CPU core
(the world's objects sit on a 4 px grid, so a patch never splits a grid cell).

The shipped directory has Stable Diffusion's layout minus ``vae/``:
``unet/`` ``scheduler/`` ``text_encoder/`` ``tokenizer/`` and ``vsae_diffusion.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from vsae.world.generate import IMAGE_SIZE


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of the tiny UNet and its noise schedule.

    Attributes
    ----------
    patch: fold factor (pixels per side folded into channels; the UNet sees ``32 / patch``).
    channels: ``block_out_channels`` of the two UNet resolutions (8 and 4 for ``patch=4``).
    layers_per_block: ResNet layers per down block (up blocks get one more).
    heads: attention heads of the cross-attention transformers.
    cross_attention_dim: width of the text hidden states (the world CLIP's text width).
    train_timesteps: DDPM timesteps; the schedule is ``squaredcos_cap_v2`` (Nichol & Dhariwal).
    prediction_type: what the UNet predicts: ``sample`` (the clean image x0; on this world's flat,
        almost caption-determined images it learns in a few hundred CPU steps, where ``epsilon``
        still gave noise after 600), ``epsilon`` or ``v_prediction``.
    """

    patch: int = 4
    channels: tuple[int, int] = (64, 96)
    layers_per_block: int = 1
    heads: int = 4
    cross_attention_dim: int = 64
    train_timesteps: int = 1000
    prediction_type: str = "sample"


def build_unet(cfg: UNetConfig):
    """A randomly initialised `UNet2DConditionModel` over folded 32x32 RGB pixels: a plain ResNet
    block at the folded resolution, cross-attention below it and in the middle block."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // cfg.patch,
        in_channels=3 * cfg.patch**2,
        out_channels=3 * cfg.patch**2,
        block_out_channels=tuple(cfg.channels),
        layers_per_block=cfg.layers_per_block,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cfg.cross_attention_dim,
        attention_head_dim=cfg.heads,
        norm_num_groups=8,
    )


def build_scheduler(cfg: UNetConfig):
    """The training noise schedule (a `DDPMScheduler`); sampling uses DDIM on the same config."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        num_train_timesteps=cfg.train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type=cfg.prediction_type,
        clip_sample=True,
    )


def fold(images_N3HW, patch: int):
    """Pixels in [-1, 1] [N, 3, H, W] -> the UNet's sample space [N, 3 p^2, H/p, W/p]."""
    import torch.nn.functional as F

    return F.pixel_unshuffle(images_N3HW, patch) if patch > 1 else images_N3HW


def unfold(sample_NCHW, patch: int):
    """Inverse of `fold`."""
    import torch.nn.functional as F

    return F.pixel_shuffle(sample_NCHW, patch) if patch > 1 else sample_NCHW
