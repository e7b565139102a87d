"""What every Hugging Face family shares: config and safetensors weights by hub id or directory,
preprocessing (image processor / tokenizer), provenance (model id, revision or weights sha256)
and the `LoadedModel` of one tower. Family files (`vsae.models.families.*`) call these.

transformers is imported inside the functions that need it (here and in the family files), so
that `import vsae.models` (e.g. for `from_module`) does not pay its seconds of start-up.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vsae.errors import VsaeError
from vsae.models.family_registry import Family, Layout, LoadRequest, get_family
from vsae.models.loaded import Inputs, LoadedModel, find_blocks

PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
IMAGE_EMBED = ("image_embeds", "pooler_output")
TEXT_EMBED = ("text_embeds", "pooler_output")


class ImagePreprocessor:
    """PIL images -> {"pixel_values": [B, 3, H, W]} (and any other `keys` the model takes, such as
    SigLIP 2's ``pixel_attention_mask`` and ``spatial_shapes``) with a transformers image processor."""

    def __init__(self, processor: Any, keys: tuple[str, ...] = ("pixel_values",)):
        self.processor = processor
        self.keys = keys

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        out = self.processor(images=images, return_tensors="pt")
        return {k: out[k] for k in self.keys}


class TextPreprocessor:
    """Strings -> {"input_ids", "attention_mask"} [B, T], padded to the longest, truncated to max_length."""

    def __init__(self, tokenizer: Any, max_length: int):
        # DataLoader workers are forked after the tokenizer was used; its thread pool must be off.
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.tokenizer = tokenizer
        self.max_length = max_length
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        out = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_token_type_ids=False,
        )
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


def weights_sha256(directory: Path) -> str:
    """sha256 over the weight files of a local model directory (names and bytes, sorted by name)."""
    h = hashlib.sha256()
    files = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def cached_revision(model_id: str, filename: str = "config.json") -> str | None:
    """The commit of a hub id's snapshot in the local cache, or None (best effort)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        p = try_to_load_from_cache(model_id, filename)
        m = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(p)) if isinstance(p, str) else None
        return m.group(1) if m else None
    except Exception:  # provenance is best effort for hub ids
        return None


def provenance(model_id: str, config: Any, family: str, tower: str, cls_name: str) -> dict[str, Any]:
    """JSON-able provenance: model id (resolved path), family, tower, class, and the weights'
    sha256 (directories) or the hub revision (hub ids)."""
    prov: dict[str, Any] = {"model": model_id, "family": family, "tower": tower, "class": cls_name}
    if os.path.isdir(model_id):
        prov["model"] = str(Path(model_id).resolve())
        prov["weights_sha256"] = weights_sha256(Path(model_id))
    else:
        prov["revision"] = getattr(config, "_commit_hash", None) or cached_revision(model_id)
    return prov


def refuse_pickle_only(model_dir: str | os.PathLike, cls_name: str = "AutoModel") -> None:
    """One line when a local model directory has pickle weights but no safetensors weights."""
    d = Path(model_dir)
    if not d.is_dir() or any(d.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pat in PICKLE_WEIGHTS for p in d.glob(pat))
    if pickles:
        raise VsaeError(
            f"model {d} has only pickle weights ({', '.join(pickles[:3])}), which can run code when loaded; "
            f"vsae loads safetensors only: convert it once with `{cls_name}.from_pretrained(dir)"
            ".save_pretrained(dir, safe_serialization=True)` where you trust it"
        )


def safe_from_pretrained(cls: Any, source: str | os.PathLike, what: str = "model", **kwargs: Any) -> Any:
    """``cls.from_pretrained(source, use_safetensors=True, **kwargs)``: the one way vsae loads the
    weights of a transformers or diffusers model. A pickle checkpoint can run code when loaded, so
    a local directory (or its ``subfolder``) with only pickle weights is refused by name, and a
    hub id downloads safetensors only. Any failure is one line naming `what` (e.g. "the CLIP")."""
    src = str(source)
    sub = kwargs.get("subfolder") or ""
    refuse_pickle_only(Path(src) / sub if sub else src, cls.__name__)
    try:
        return cls.from_pretrained(src, use_safetensors=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        where = f"{src}/{sub}" if sub else src
        raise VsaeError(
            f"cannot load {what} {where!r} ({str(e).splitlines()[0][:160] if str(e) else type(e).__name__}); "
            "vsae loads safetensors weights only"
        ) from None


def load_config(source: str, local_only: bool) -> tuple[Any | None, str]:
    """(the Hugging Face config of `source`, "") or (None, why) when it has no readable config.json."""
    import transformers as T

    try:
        return T.AutoConfig.from_pretrained(source, local_files_only=local_only), ""
    except (OSError, ValueError) as e:
        return None, str(e).splitlines()[0][:120]


def choose_class(family: Family, config: Any) -> str:
    """The transformers class to load: the family's default for the model_type, or the class
    named in ``config.architectures`` when the family allows it."""
    mt = config.model_type
    arch = (getattr(config, "architectures", None) or [None])[0]
    return arch if arch in family.architectures.get(mt, ()) else family.model_types[mt]


def choose_tower(req: LoadRequest, towers: tuple[str, ...], what: str) -> str:
    """The tower asked for (default: the first of `towers`); VsaeError if `what` has no such tower."""
    tower = req.tower or towers[0]
    if tower not in towers:
        raise VsaeError(f"tower {tower!r} not available for {what}; valid: {', '.join(towers)}")
    return tower


def load_weights(req: LoadRequest, cls_name: str) -> Any:
    """``transformers.<cls_name>.from_pretrained`` in eval mode, safetensors only (`safe_from_pretrained`)."""
    import transformers as T

    cls = getattr(T, cls_name)
    return safe_from_pretrained(
        cls, req.source, "weights of", dtype=req.dtype, local_files_only=req.local_only
    ).eval()


def clip_processor(size: int, **norm: Any) -> Any:
    """A CLIP-style processor: resize the shortest edge to `size` and centre-crop."""
    import transformers as T

    return T.CLIPImageProcessor(
        size={"shortest_edge": size}, crop_size={"height": size, "width": size}, **norm
    )


def image_processor(
    source: str, image_size: int, layout: Layout, local_only: bool = False
) -> tuple[Any, str]:
    """(image processor, "model") from the model's own config, else (the family default, "default")."""
    import transformers as T

    try:
        return T.AutoImageProcessor.from_pretrained(source, local_files_only=local_only), "model"
    except (OSError, ValueError):
        pass
    make = layout.default_processor or clip_processor
    return make(int(image_size)), "default"


def tokenizer(source: str, local_only: bool, subfolder: str = "", config: Any = None) -> Any:
    """The model's tokenizer; one-line VsaeError when it has none. `config`: the model's config,
    for a tokenizer in a sub-folder of its own (else AutoTokenizer looks for one there)."""
    import transformers as T

    try:
        return T.AutoTokenizer.from_pretrained(
            source, local_files_only=local_only, subfolder=subfolder, config=config
        )
    except (OSError, ValueError) as e:
        raise VsaeError(f"cannot load the tokenizer of {source!r} ({str(e).splitlines()[0][:120]})") from None


def text_preprocessor(tok: Any, max_positions: int) -> TextPreprocessor:
    """Tokenise to at most the model's positions and the tokenizer's own limit."""
    limit = int(getattr(tok, "model_max_length", max_positions) or max_positions)
    return TextPreprocessor(tok, min(int(max_positions), limit))


def image_side(config: Any) -> int:
    """The square input side of a vision config (InternViT gives [H, W]; SigLIP 2 NaFlex: 0, variable)."""
    size = getattr(config, "image_size", 0) or 0
    return int(size[0] if isinstance(size, list | tuple) else size)


def tower_model(
    req: LoadRequest,
    *,
    full: Any,
    model: Any,
    sub_config: Any,
    layout: Layout,
    tower: str,
    family: str | None = None,
    move_full: bool = True,
    forward_kwargs: dict[str, Any] | None = None,
) -> LoadedModel:
    """The LoadedModel of one tower (`model`, inside the loaded `full` model) laid out as `layout`:
    moved to the device, with its preprocessing and provenance."""
    model.to(req.device)
    if move_full and full is not model:
        full.to(req.device)
    family = family or layout.family
    n_prefix = layout.n_prefix
    if n_prefix is None:
        n_prefix = int(layout.has_cls) + int(getattr(sub_config, "num_register_tokens", 0) or 0)
    prov = provenance(req.source, req.config, family, tower, type(model).__name__)
    preprocess: Callable[[list], Inputs]
    if layout.modality == "image":
        size = image_side(sub_config)
        proc, origin = image_processor(req.source, size, layout, req.local_only)
        preprocess = ImagePreprocessor(proc, layout.image_inputs)
        if origin == "default":  # no preprocessor config in the model: say so in every store
            prov["preprocess"] = f"default {type(proc).__name__} ({size} px)"
    else:
        max_len = int(getattr(sub_config, "max_position_embeddings", 512))
        preprocess = text_preprocessor(tokenizer(req.source, req.local_only), max_len)
    return LoadedModel(
        model,
        preprocess,
        family=family,
        tower=tower,
        modality=layout.modality,
        blocks=find_blocks(model, int(sub_config.num_hidden_layers)),
        sublayer_names={"attn": layout.attn, "mlp": layout.mlp},
        embed_fields=layout.embed_fields,
        has_cls=layout.has_cls,
        n_prefix=n_prefix,
        provenance=prov,
        full_model=full,
        dtype=req.dtype or torch.float32,
        forward_kwargs=forward_kwargs,
        token_mask=layout.token_mask,
    )


def single_tower_loader(family_name: str, towers: tuple[str, ...]) -> Callable[[LoadRequest], LoadedModel]:
    """The `load` of a family whose checkpoints are one tower (DINOv2, ViT, a CLIP vision or text
    model): the class from the config, the whole model hooked; `towers`: the one tower's name."""

    def load(req: LoadRequest) -> LoadedModel:
        fam = get_family(family_name)
        if fam.layout is None:
            raise VsaeError(f"model family {family_name!r} has no layout; register it with one")
        tower = choose_tower(req, towers, req.config.model_type)
        full = load_weights(req, choose_class(fam, req.config))
        return tower_model(req, full=full, model=full, sub_config=req.config, layout=fam.layout, tower=tower)

    return load
