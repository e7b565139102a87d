"""Steering SDXL, SD3 and FLUX through an SAE on one of their text encoders (Olson et al.'s
text-encoder steering, on the pipelines researchers use now), with diffusers' own pipeline.

The SAE is spliced (`vsae.steer.intervene`, error term kept) into the chosen encoder while the
pipeline's own ``encode_prompt`` encodes the prompts; the pipeline then samples from those
embeddings with its own scheduler and guidance. The negative (unconditional) prompt is encoded
by the pipeline after the splice is removed, so, as in `vsae.steer.diffusion_pipeline`, edits
apply to the conditional prompts only. The encoder is named by its tower, as in extraction
(`vsae.models.families.pipeline_text`): ``text`` (``text_encoder/``), ``text_2``, ``text_3``.
Which hidden states each pipeline reads: SDXL the penultimate block of both CLIP encoders (and
the second's pooled projection), SD3 both CLIPs' penultimate blocks and pooled projections and
T5's last, FLUX CLIP's pooled output and T5's last; an edit at a later block of an encoder than
the one its pipeline reads changes only what it reads after that block.

```python
pipe = load_pipeline("stabilityai/stable-diffusion-xl-base-1.0", device="cuda", dtype="float16")
images = generate(pipe, ["a red car"], tower="text_2", sae=sae, hook="resid.20",
                  edits=[LatentEdit(123, "clamp", 50.0)], steps=30, seed=0)
```
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.errors import VsaeError
from vsae.models import LoadedModel
from vsae.models.families.clip import text_encoder_model
from vsae.models.families.pipeline_text import TOWERS
from vsae.models.families.t5 import t5_encoder_model
from vsae.models.hf import safe_from_pretrained
from vsae.models.loaded import parse_dtype
from vsae.steer.edits import prompt_list
from vsae.steer.intervention import intervene


def load_pipeline(source: str | Path, device: str = "cpu", dtype: str | torch.dtype = "float32") -> Any:
    """A diffusers text-to-image pipeline (SDXL, SD3, FLUX ...) from a directory or hub id, safetensors only."""
    import diffusers

    pipe = safe_from_pretrained(
        diffusers.DiffusionPipeline, source, "the diffusion pipeline", torch_dtype=parse_dtype(dtype)
    )
    return pipe.to(device)


def encoder_model(pipe: Any, tower: str, source: str = "") -> LoadedModel:
    """The pipeline's text encoder `tower` (its own module, shared) as a LoadedModel, so SAE hooks
    (``resid.L`` ...) resolve on it as in extraction."""
    if tower not in TOWERS:
        raise VsaeError(f"unknown text encoder tower {tower!r}; valid: {', '.join(TOWERS)}")
    sub, tok_sub = TOWERS[tower]
    enc, tok = getattr(pipe, sub, None), getattr(pipe, tok_sub, None)
    if enc is None or tok is None:
        have = [t for t, (s, _) in TOWERS.items() if getattr(pipe, s, None) is not None]
        raise VsaeError(f"{type(pipe).__name__} has no {sub}; valid towers: {', '.join(have)}")
    wrap = t5_encoder_model if enc.config.model_type == "t5" else text_encoder_model
    lm = wrap(enc, tok, source or type(pipe).__name__)
    lm.tower = tower
    lm.provenance = {**lm.provenance, "tower": tower, "subfolder": sub}
    return lm


def _embeddings(pipe: Any, prompts: list[str], max_sequence_length: int | None) -> dict[str, torch.Tensor]:
    """The pipeline's own ``encode_prompt`` of the prompts (no guidance) -> the embedding keyword
    arguments of its ``__call__``."""
    params = inspect.signature(pipe.encode_prompt).parameters
    kw: dict[str, Any] = {"prompt": prompts, "device": pipe.device, "num_images_per_prompt": 1}
    for name in ("prompt_2", "prompt_3"):
        if name in params:
            kw[name] = None  # each encoder gets the same prompt
    if "do_classifier_free_guidance" in params:
        kw["do_classifier_free_guidance"] = False
    if max_sequence_length is not None and "max_sequence_length" in params:
        kw["max_sequence_length"] = max_sequence_length
    out = pipe.encode_prompt(**kw)
    if len(out) == 4:  # SDXL, SD3: (embeds, negative embeds, pooled, negative pooled)
        return {"prompt_embeds": out[0], "pooled_prompt_embeds": out[2]}
    if len(out) == 3:  # FLUX: (embeds, pooled, text ids)
        return {"prompt_embeds": out[0], "pooled_prompt_embeds": out[1]}
    raise VsaeError(
        f"{type(pipe).__name__}.encode_prompt returns {len(out)} values; expected SDXL, SD3 or FLUX's"
    )


@torch.no_grad()
def generate(
    pipe: Any,
    prompts: Sequence[str],
    *,
    tower: str = "text",
    sae: Any = None,
    hook: str | None = None,
    edits: Sequence = (),
    pre_zero: bool = False,
    steps: int = 30,
    seed: int = 0,
    guidance: float | None = None,
    size: int | None = None,
    max_sequence_length: int | None = None,
) -> np.ndarray:
    """uint8 images [N, H, W, 3] for ``prompts`` from the pipeline's own sampler, seeded with
    ``seed``; with ``sae``/``hook``/``edits`` the SAE is spliced into encoder ``tower`` at ``hook``
    while the prompts are encoded. ``guidance`` / ``size``: the pipeline's defaults when None."""
    prompts = prompt_list(prompts, sae, hook, edits)
    lm = encoder_model(pipe, tower)
    splice = (
        intervene(lm, hook, sae, edits, pre_zero=pre_zero) if hook is not None else contextlib.nullcontext()
    )
    with splice:
        emb = _embeddings(pipe, prompts, max_sequence_length)
    call: dict[str, Any] = {
        **emb,
        "num_inference_steps": int(steps),
        "generator": torch.Generator().manual_seed(int(seed)),
        "output_type": "np",
    }
    if guidance is not None:
        call["guidance_scale"] = float(guidance)
    if size is not None:
        call["height"] = call["width"] = int(size)
    if (
        max_sequence_length is not None
        and "max_sequence_length" in inspect.signature(pipe.__call__).parameters
    ):
        call["max_sequence_length"] = max_sequence_length
    images = pipe(**call).images
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def is_multi_encoder(source: str | Path) -> bool:
    """Whether ``source`` is a pipeline with several text encoders (SDXL, SD3, FLUX: a
    ``model_index.json`` naming ``text_encoder_2``), which `EncoderPipe` steers; Stable Diffusion
    1.x / 2.x and the world's tiny model are `vsae.steer.diffusion_pipeline`'s."""
    import diffusers

    try:
        config = diffusers.DiffusionPipeline.load_config(str(source))
    except Exception:  # no model_index.json (the world's model), not a repo, no network
        return False
    return "text_encoder_2" in config


@dataclass
class EncoderPipe:
    """A multi-encoder pipeline (SDXL, SD3, FLUX) with the text encoder an SAE edits chosen: what
    the diffusion steering experiment steers (`vsae.experiments.diffusion_steering`).

    Attributes
    ----------
    pipeline: the diffusers pipeline (its own scheduler and guidance sample).
    tower: the edited encoder (``text``, ``text_2``, ``text_3``); the others stay unedited.
    text: that encoder as a LoadedModel (SAE hooks resolve on it).
    tokenizer: its tokenizer.
    size: image height and width [None: the pipeline's default].
    provenance: pipeline, kind (its class) and tower.
    """

    pipeline: Any
    tower: str
    text: LoadedModel
    tokenizer: Any
    size: int | None = None
    provenance: dict = field(default_factory=dict)

    def default(self, name: str) -> Any:
        """The default of argument ``name`` of the pipeline's ``__call__`` (None if it has none)."""
        p = inspect.signature(self.pipeline.__call__).parameters.get(name)
        return None if p is None or p.default is inspect.Parameter.empty else p.default

    def guidance(self, guidance: float | None) -> float:
        """``guidance``, or the pipeline's own default where None (SDXL 5, SD3 7, FLUX 3.5)."""
        return float(self.default("guidance_scale") if guidance is None else guidance)

    def max_sequence_length(self) -> int | None:
        """The pipeline's T5 prompt length, capped at the T5 tokenizer's (None: no T5)."""
        n = self.default("max_sequence_length")
        if n is None:
            return None
        toks = [getattr(self.pipeline, t, None) for t in ("tokenizer_3", "tokenizer_2")]
        caps = [int(t.model_max_length) for t in toks if t is not None and t.model_max_length < 10**6]
        return min([int(n), *caps[:1]])

    def generate(
        self,
        prompts: Sequence[str],
        sampler: Any,
        *,
        sae: Any = None,
        hook: str | None = None,
        edits: Sequence = (),
    ) -> np.ndarray:
        """uint8 [N, H, W, 3]: `generate` in chunks of ``sampler.batch_size`` prompts, chunk
        ``s..`` seeded with ``sampler.seed + s`` (the same prompts get the same noise, steered or
        not); ``sampler.eta`` does not apply (the pipeline's own scheduler samples)."""
        out = []
        for s in range(0, len(prompts), sampler.batch_size):
            out.append(
                generate(
                    self.pipeline,
                    list(prompts[s : s + sampler.batch_size]),
                    tower=self.tower,
                    sae=sae,
                    hook=hook,
                    edits=edits,
                    steps=sampler.steps,
                    seed=sampler.seed + s,
                    guidance=sampler.guidance,
                    size=self.size,
                    max_sequence_length=self.max_sequence_length(),
                )
            )
        return np.concatenate(out)


def load_encoder_pipe(
    source: str | Path,
    tower: str,
    device: str = "cpu",
    dtype: str | torch.dtype = "float32",
    size: int | None = None,
) -> EncoderPipe:
    """`EncoderPipe` of the pipeline ``source`` with encoder ``tower`` edited (an unknown or
    absent tower: a one-line error naming the pipeline's)."""
    pipe = load_pipeline(source, device=device, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    src = str(Path(source).resolve()) if Path(source).is_dir() else str(source)
    lm = encoder_model(pipe, tower, src)
    prov = {"pipeline": src, "kind": type(pipe).__name__, "tower": tower}
    return EncoderPipe(pipe, tower, lm, getattr(pipe, TOWERS[tower][1]), size, prov)
