"""The text encoder of a text-to-image pipeline (Stable Diffusion layout: ``model_index.json``
with ``text_encoder/`` and ``tokenizer/`` sub-folders; a directory or a hub repo), loaded as the
``clip_text`` family from those sub-folders: ``vsae extract --model <pipeline> --data prompts.txt``.
"""

from __future__ import annotations

from pathlib import Path

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.families.clip import text_encoder_model
from vsae.models.loaded import LoadedModel
from vsae.models.registry import Family, LoadRequest, get_family, register_family

TEXT_ENCODER, TOKENIZER = "text_encoder", "tokenizer"


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


def load(req: LoadRequest) -> LoadedModel:
    """The pipeline's CLIP text encoder and tokenizer, as a ``clip_text`` LoadedModel."""
    import transformers as T

    if req.tower not in (None, "text"):
        raise VsaeError(f"tower {req.tower!r} not available for a diffusion pipeline; valid: text")
    src = req.source
    try:
        config = T.AutoConfig.from_pretrained(src, subfolder=TEXT_ENCODER, local_files_only=req.local_only)
    except (OSError, ValueError) as e:
        raise VsaeError(
            f"cannot read {src}/{TEXT_ENCODER}/config.json ({str(e).splitlines()[0][:120]})"
        ) from None
    clip_text = get_family("clip_text")
    if config.model_type not in clip_text.model_types:
        raise VsaeError(
            f"the text encoder of {src} is a {config.model_type!r}, not a CLIP text model; "
            "load it with --model <its directory>"
        )
    local = Path(src).is_dir()
    encoder = hf.safe_from_pretrained(
        getattr(T, hf.choose_class(clip_text, config)),
        src,
        "the text encoder",
        subfolder=TEXT_ENCODER,
        dtype=req.dtype,
        local_files_only=req.local_only,
    )
    lm = text_encoder_model(
        encoder.eval().to(req.device), hf.tokenizer(src, req.local_only, TOKENIZER, config), src
    )
    prov = {**lm.provenance, "subfolder": TEXT_ENCODER}
    if local:
        prov["model"] = str(Path(src).resolve())
        prov["weights_sha256"] = hf.weights_sha256(Path(src) / TEXT_ENCODER)
    else:
        prov["revision"] = getattr(config, "_commit_hash", None) or hf.cached_revision(
            src, "model_index.json"
        )
    lm.provenance = prov
    return lm


register_family(Family("pipeline_text", load, claims=is_pipeline))
