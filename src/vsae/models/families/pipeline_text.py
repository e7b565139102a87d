"""The text encoders of a text-to-image pipeline (``model_index.json`` with ``text_encoder/`` and
``tokenizer/`` sub-folders; a directory or a hub repo): ``vsae extract --model <pipeline> --data
prompts.txt [--tower text|text_2|text_3]``. The tower names the encoder, and every store records
it (``tower``, ``subfolder``):

| pipeline | ``--tower text`` (default) | ``text_2`` | ``text_3`` |
|---|---|---|---|
| Stable Diffusion 1.x / 2.x, the world's tiny model | CLIP (``clip_text``) | | |
| SDXL | CLIP ViT-L (``clip_text``) | OpenCLIP bigG with projection (``clip_text``) | |
| SD3 | CLIP ViT-L with projection | OpenCLIP bigG with projection | T5-XXL (``t5_text``) |
| FLUX | CLIP ViT-L (``clip_text``) | T5-XXL (``t5_text``) | |
"""

from __future__ import annotations

from pathlib import Path

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.families.clip import text_encoder_model
from vsae.models.families.t5 import t5_encoder_model
from vsae.models.family_registry import Family, LoadRequest, register_family
from vsae.models.loaded import LoadedModel

TEXT_ENCODER, TOKENIZER = "text_encoder", "tokenizer"
# tower -> (text encoder sub-folder, tokenizer sub-folder)
TOWERS = {
    "text": (TEXT_ENCODER, TOKENIZER),
    "text_2": ("text_encoder_2", "tokenizer_2"),
    "text_3": ("text_encoder_3", "tokenizer_3"),
}
ENCODER_CLASSES = {
    "clip_text_model": ("CLIPTextModel", "CLIPTextModelWithProjection"),
    "t5": ("T5EncoderModel",),
}


def is_pipeline(source: str, local_only: bool) -> bool:
    """A directory with ``text_encoder/config.json``, ``tokenizer/`` and a ``model_index.json`` (or
    ``unet/``); a hub repo with a ``model_index.json``."""
    p = Path(source)
    if p.is_dir():
        return (
            (p / TEXT_ENCODER / "config.json").is_file()
            and (p / TOKENIZER).is_dir()
            and ((p / "model_index.json").is_file() or (p / "unet").is_dir())
        )
    try:
        from huggingface_hub import hf_hub_download

        hf_hub_download(source, "model_index.json", local_files_only=local_only)
        return True
    except Exception:  # not a repo id, no such file, no network: not a pipeline
        return False


def encoder_towers(source: str) -> list[str]:
    """The towers of a local pipeline directory (its ``text_encoder*/`` sub-folders)."""
    return [t for t, (sub, _) in TOWERS.items() if (Path(source) / sub / "config.json").is_file()]


def load(req: LoadRequest) -> LoadedModel:
    """One text encoder of the pipeline (``req.tower``, default ``text``) and its tokenizer, as a
    ``clip_text`` or ``t5_text`` LoadedModel."""
    import transformers as T

    src = req.source
    local = Path(src).is_dir()
    tower = req.tower or "text"
    have = encoder_towers(src) if local else list(TOWERS)
    if tower not in TOWERS or tower not in have:
        raise VsaeError(
            f"tower {tower!r} not available for a diffusion pipeline; valid: {', '.join(have or ['text'])}"
        )
    sub, tok_sub = TOWERS[tower]
    try:
        config = T.AutoConfig.from_pretrained(src, subfolder=sub, local_files_only=req.local_only)
    except (OSError, ValueError) as e:
        raise VsaeError(f"cannot read {src}/{sub}/config.json ({str(e).splitlines()[0][:120]})") from None
    classes = ENCODER_CLASSES.get(config.model_type)
    if classes is None:
        raise VsaeError(
            f"the {sub} of {src} is a {config.model_type!r}, not a CLIP or T5 text encoder; "
            "load it with --model <its directory>"
        )
    arch = (getattr(config, "architectures", None) or [classes[0]])[0]
    encoder = hf.safe_from_pretrained(
        getattr(T, arch if arch in classes else classes[0]),
        src,
        f"the {sub}",
        subfolder=sub,
        dtype=req.dtype,
        local_files_only=req.local_only,
    )
    wrap = t5_encoder_model if config.model_type == "t5" else text_encoder_model
    lm = wrap(encoder.eval().to(req.device), hf.tokenizer(src, req.local_only, tok_sub, config), src)
    lm.tower = tower
    prov = {**lm.provenance, "tower": tower, "subfolder": sub}
    if local:
        prov["model"] = str(Path(src).resolve())
        prov["weights_sha256"] = hf.weights_sha256(Path(src) / sub)
    else:
        prov["revision"] = getattr(config, "_commit_hash", None) or hf.cached_revision(
            src, "model_index.json"
        )
    lm.provenance = prov
    return lm


register_family(Family("pipeline_text", load, claims=is_pipeline))
