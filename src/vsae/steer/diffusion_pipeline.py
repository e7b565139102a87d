"""Text-to-image generation with an optional SAE splice in the text encoder (Olson et al.,
steering a diffusion model through SAE latents of its text encoder).

One code path for the shapes world's tiny model (`vsae.world.diffusion`, pixel space) and for
Stable Diffusion (a ``StableDiffusionPipeline`` directory or hub id: ``unet/ vae/ text_encoder/
tokenizer/ scheduler/``). Sampling is DDIM (Song et al., "Denoising diffusion implicit models";
eta 0, or the pipeline's own) with classifier-free guidance (Ho & Salimans):
``eps = eps(x, "") + guidance * (eps(x, prompt) - eps(x, ""))``.

The text is encoded once per prompt and the same hidden states condition every denoising step,
so an SAE edit made while encoding a prompt applies at every step. Edits apply to the
*conditional* prompts' encoding only; the unconditional (empty) prompt is encoded without the
splice, so guidance pushes away from the unedited unconditional prediction toward the edited
conditional one (the usual practice in text-encoder steering).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models.hf import safe_from_pretrained
from vsae.steer.edits import prompt_list
from vsae.steer.steer_config import SamplerConfig as SamplerConfig  # torch-free (steer diffusion's options)

PIPELINE_JSON = "vsae_diffusion.json"


@dataclass
class DiffusionPipe:
    """The parts of a text-to-image pipeline that generation needs.

    Attributes
    ----------
    unet: a diffusers ``UNet2DConditionModel`` (diffusers' models are typed ``Any`` here).
    scheduler_config: the pipeline's scheduler config (sampling uses DDIM on it).
    text: the text encoder as a `vsae.models.LoadedModel` (family ``clip_text``), so SAE hooks
        (``resid.L`` ...) resolve on it as on any other model.
    tokenizer: the text encoder's tokenizer (prompts are padded to its ``model_max_length``).
    vae: the ``AutoencoderKL`` of latent diffusion, or None (pixel space).
    patch: pixel-space fold factor (`vsae.world.diffusion.t2i_model.fold`); 1 for latent diffusion.
    mask_padding: pass the prompt's attention mask to the UNet's cross-attention (the tiny
        model is trained so); Stable Diffusion attends to the padding tokens too.
    image_size: output images are ``image_size`` x ``image_size``.
    source: where it was loaded from (provenance).
    guidance, eta: the guidance scale and DDIM eta it samples with where `SamplerConfig` leaves
        them unset (``sampler_guidance``, ``sampler_eta`` in vsae_diffusion.json; Stable
        Diffusion: 7.5 and 0, its pipeline's defaults).
    """

    unet: Any
    scheduler_config: Any
    text: Any
    tokenizer: Any
    vae: Any
    patch: int
    mask_padding: bool
    image_size: int
    source: str
    provenance: dict = field(default_factory=dict)
    guidance: float = 7.5
    eta: float = 0.0

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype


def text_loaded_model(text_encoder: nn.Module, tokenizer: Any, source: str) -> Any:
    """Wrap a pipeline's CLIP text encoder as a `LoadedModel` of the ``clip_text`` family (the
    same layout `vsae.models.load` gives a CLIP text tower), sharing the module."""
    from vsae.models.families.clip import text_encoder_model

    return text_encoder_model(text_encoder, tokenizer, source)


def load_pipe(source: str | Path, device: str = "cpu", dtype: str | torch.dtype = "float32") -> DiffusionPipe:
    """Load a text-to-image pipeline directory or hub id (Stable Diffusion layout; the tiny world
    model's directory has no ``vae/`` and a ``vsae_diffusion.json``)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel

    from vsae.models.loaded import DTYPES

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise VsaeError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    src = str(source)
    local = Path(src).is_dir()
    if not local and Path(src).exists():
        raise VsaeError(f"{src} is not a directory; give a diffusion pipeline directory or hub id")
    meta: dict = {}
    if local and (Path(src) / PIPELINE_JSON).is_file():
        meta = json.loads((Path(src) / PIPELINE_JSON).read_text())
    if local and not (Path(src) / "unet").is_dir():
        raise VsaeError(
            f"cannot load diffusion pipeline {src!r} (no unet/); give a directory "
            "with unet/ text_encoder/ tokenizer/ scheduler/ (Stable Diffusion layout) or a hub id"
        )
    what = "diffusion pipeline"  # weights: safetensors only (a pickled UNet can run code when loaded)
    unet = safe_from_pretrained(
        UNet2DConditionModel, src, what, subfolder="unet", torch_dtype=dtype, low_cpu_mem_usage=False
    )
    text_encoder = safe_from_pretrained(CLIPTextModel, src, what, subfolder="text_encoder", dtype=dtype)
    has_vae = (Path(src) / "vae").is_dir() if local else not meta
    vae = (
        safe_from_pretrained(
            AutoencoderKL, src, what, subfolder="vae", torch_dtype=dtype, low_cpu_mem_usage=False
        )
        if has_vae
        else None
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(src, subfolder="tokenizer")
        from diffusers import DDIMScheduler

        sched_cfg = DDIMScheduler.load_config(src, subfolder="scheduler")
    except (OSError, ValueError) as e:
        raise VsaeError(
            f"cannot load diffusion pipeline {src!r} ({str(e).splitlines()[0][:160]}); give a directory "
            "with unet/ text_encoder/ tokenizer/ scheduler/ (Stable Diffusion layout) or a hub id"
        ) from None
    for m in (unet, text_encoder, vae):
        if m is not None:
            m.to(device).eval().requires_grad_(False)
    if vae is not None:
        size = int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)
    else:
        size = int(meta.get("image_size", unet.config.sample_size * int(meta.get("patch", 1))))
    return DiffusionPipe(
        unet=unet,
        scheduler_config=sched_cfg,
        text=text_loaded_model(text_encoder, tokenizer, src),
        tokenizer=tokenizer,
        vae=vae,
        patch=int(meta.get("patch", 1)),
        mask_padding=bool(meta.get("mask_padding", False)),
        image_size=size,
        source=str(Path(src).resolve()) if local else src,
        provenance={
            "pipeline": str(Path(src).resolve()) if local else src,
            "kind": meta.get("kind", "diffusers"),
        },
        guidance=float(meta.get("sampler_guidance", 7.5)),
        eta=float(meta.get("sampler_eta", 0.0)),
    )


@torch.no_grad()
def encode_prompts(pipe: DiffusionPipe, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(hidden states [B, T, d], attention mask [B, T]) of prompts padded to the tokenizer's
    max length, as Stable Diffusion encodes them (last hidden state, no padding mask in the
    text encoder; CLIP's causal mask keeps real tokens from seeing the padding). A splice on
    ``pipe.text`` that is live during this call edits the result."""
    tok = pipe.tokenizer
    enc = tok(
        list(prompts),
        padding="max_length",
        max_length=tok.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    ids = enc["input_ids"].to(pipe.text.device)
    hidden = pipe.text.model(ids)[0]
    return hidden.to(pipe.dtype), enc["attention_mask"].to(pipe.device)


def initial_noise(pipe: DiffusionPipe, n: int, seed: int) -> torch.Tensor:
    """The starting noise of ``n`` images: image i's noise depends only on (seed, i), so the same
    prompts with the same seed start from the same noise in any batching (the images are then
    bit-identical for the same ``batch_size``; other batchings may differ by float rounding)."""
    return _seeded_noise(pipe, (n,), int(seed))


def resolved_sampler(pipe: DiffusionPipe, cfg: SamplerConfig) -> tuple[float, float]:
    """(guidance, eta) that `generate` uses: ``cfg``'s, or the pipeline's own where unset."""
    g = pipe.guidance if cfg.guidance is None else float(cfg.guidance)
    eta = pipe.eta if cfg.eta is None else float(cfg.eta)
    return g, eta


def step_noises(pipe: DiffusionPipe, n: int, seed: int, steps: int) -> torch.Tensor:
    """The fresh noise of ancestral (eta > 0) steps [n, steps, C, H, W]: like `initial_noise`,
    image i's depends only on (seed, i), from a generator of its own (seed + 1_000_003)."""
    return _seeded_noise(pipe, (n, steps), int(seed) + 1_000_003)


def _seeded_noise(pipe: DiffusionPipe, lead: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal noise [*lead, C, H, W] in the UNet's sample space, drawn on the CPU from a
    generator seeded with ``seed`` (row i of the first dimension depends on seed and i only)."""
    c = int(pipe.unet.config.in_channels)
    s = int(pipe.unet.config.sample_size)
    return torch.randn((*lead, c, s, s), generator=torch.Generator().manual_seed(seed))


def _to_images(pipe: DiffusionPipe, x: torch.Tensor) -> np.ndarray:
    if pipe.vae is not None:
        x = pipe.vae.decode(x / pipe.vae.config.scaling_factor).sample
    elif pipe.patch > 1:  # the inverse of the world model's fold (`vsae.world.diffusion.t2i_model.fold`)
        x = torch.nn.functional.pixel_shuffle(x, pipe.patch)
    x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def generate(
    pipe: DiffusionPipe,
    prompts: Sequence[str],
    cfg: SamplerConfig = SamplerConfig(),
    *,
    sae: nn.Module | None = None,
    hook: str | None = None,
    edits: Sequence = (),
    pre_zero: bool = False,
) -> np.ndarray:
    """uint8 images [N, H, W, 3] for ``prompts``. With ``sae``/``hook``/``edits`` the SAE is spliced
    into the text encoder at ``hook`` (`vsae.steer.intervene`, error term kept) while the
    conditional prompts are encoded; the unconditional prompt is encoded without it."""
    from diffusers import DDIMScheduler

    from vsae.steer.intervention import intervene

    prompts = prompt_list(prompts, sae, hook, edits)
    if sae is not None:
        assert hook is not None  # checked above: both or neither
        with intervene(pipe.text, hook, sae, edits, pre_zero=pre_zero):
            cond, mask = encode_prompts(pipe, prompts)
    else:
        cond, mask = encode_prompts(pipe, prompts)
    guidance, eta = resolved_sampler(pipe, cfg)
    guided = guidance != 1.0
    if guided:
        unc, unc_mask = encode_prompts(pipe, [""])
    noise = initial_noise(pipe, len(prompts), cfg.seed)
    step_noise = step_noises(pipe, len(prompts), cfg.seed, cfg.steps) if eta > 0 else None
    out = []
    for s in range(0, len(prompts), cfg.batch_size):
        sl = slice(s, s + cfg.batch_size)
        c, m = cond[sl], mask[sl]
        b = c.shape[0]
        sched = DDIMScheduler.from_config(pipe.scheduler_config)
        sched.set_timesteps(cfg.steps)
        x = noise[sl].to(pipe.device, pipe.dtype) * sched.init_noise_sigma
        if guided:
            c = torch.cat([unc.expand(b, -1, -1), c])
            m = torch.cat([unc_mask.expand(b, -1), m])
        for i, t in enumerate(sched.timesteps):
            xin = torch.cat([x, x]) if guided else x
            xin = sched.scale_model_input(xin, t)
            eps = pipe.unet(
                xin, t, encoder_hidden_states=c, encoder_attention_mask=m if pipe.mask_padding else None
            ).sample
            if guided:
                e_u, e_c = eps.chunk(2)
                eps = e_u + guidance * (e_c - e_u)
            vn = None if step_noise is None else step_noise[sl, i].to(pipe.device, pipe.dtype)
            x = sched.step(eps, t, x, eta=eta, variance_noise=vn).prev_sample
        out.append(_to_images(pipe, x))
    return np.concatenate(out)
