"""Load a model by Hugging Face hub id or local directory (or wrap any nn.Module) for capture.

`load` detects the family from the config's `model_type` (see `families.py`), loads it with
`from_pretrained`, picks the tower to capture from (the vision tower of a CLIP / SigLIP / LLaVA
checkpoint by default; `tower="text"` / `"language"` for the CLIP text encoder / LLaVA language
model), builds its preprocessing and records provenance (model id, revision or weights sha256).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from vsae.errors import VsaeError
from vsae.models.families import ALLOWED_ARCHITECTURES, FAMILIES, FamilySpec, family_for_model_type
from vsae.models.hooks import StopForward
from vsae.models.hub import local_files_only

Inputs = dict[str, torch.Tensor] | torch.Tensor
CUSTOM_PREFIXES = ("python:", "timm:")  # --model forms for any nn.Module (see vsae.models.custom)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ImagePreprocessor:
    """PIL images -> {"pixel_values": [B, 3, H, W]} with a transformers image processor."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        out = self.processor(images=images, return_tensors="pt")
        return {"pixel_values": out["pixel_values"]}


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


class LoadedModel:
    """A model ready for capture: the unmodified module, its preprocessing and its layout.

    Attributes
    ----------
    model: the module forward hooks are placed on (vision tower, text encoder, LM, or the user's).
    full_model: what was loaded (e.g. the whole LlavaForConditionalGeneration or CLIPModel).
    family: "clip" | "clip_text" | "siglip" | "dinov2" | "vit" | "llava" | "module".
    tower: "vision" | "text" | "language" | "module".
    modality: "image" | "text".
    preprocess: list of PIL images (or strings) -> model inputs.
    blocks: the transformer blocks (None if unknown, e.g. a CNN); num_layers = len(blocks).
    has_cls, n_prefix: token 0 is CLS; CLS + register tokens before the patches.
    provenance: JSON-able dict (model id, family, class, revision or weights_sha256).
    forward_kwargs: extra keyword arguments of every forward call (e.g. use_cache=False for LMs).
    """

    def __init__(
        self,
        model: nn.Module,
        preprocess: Callable[[list], Inputs],
        *,
        family: str,
        tower: str,
        modality: str,
        blocks: Sequence[nn.Module] | None,
        sublayer_names: dict[str, tuple[str, ...]],
        embed_fields: tuple[str, ...],
        has_cls: bool,
        n_prefix: int,
        provenance: dict[str, Any],
        full_model: nn.Module | None = None,
        dtype: torch.dtype = torch.float32,
        forward_kwargs: dict[str, Any] | None = None,
    ):
        self.model = model
        self.preprocess = preprocess
        self.family = family
        self.tower = tower
        self.modality = modality
        self.blocks = blocks
        self.sublayer_names = sublayer_names
        self.embed_fields = embed_fields
        self.has_cls = has_cls
        self.n_prefix = n_prefix
        self.provenance = provenance
        self.full_model = full_model if full_model is not None else model
        self.dtype = dtype
        self.forward_kwargs = forward_kwargs or {}

    @property
    def num_layers(self) -> int:
        return len(self.blocks) if self.blocks is not None else 0

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def hook_module(self, hook: str) -> nn.Module:
        """The module a hook name resolves to ("resid.L" | "mlp.L" | "attn.L" | "embed" | "module:a.b")."""
        from vsae.models.hooks import resolve_hook

        return resolve_hook(self, hook).module

    def to_device(self, inputs: Inputs) -> Inputs:
        """Move inputs to the model's device; floating tensors take the model's dtype."""
        dev = self.device

        def mv(t: torch.Tensor) -> torch.Tensor:
            t = t.to(dev, non_blocking=True)
            return t.to(self.dtype) if t.is_floating_point() else t

        return {k: mv(v) for k, v in inputs.items()} if isinstance(inputs, dict) else mv(inputs)

    def run(self, inputs: Inputs) -> None:
        """Forward pass for capture (no grad); ends early when a capture has all it needs."""
        inputs = self.to_device(inputs)
        with torch.inference_mode():
            try:
                if isinstance(inputs, dict):
                    self.model(**inputs, **self.forward_kwargs)
                else:
                    self.model(inputs, **self.forward_kwargs)
            except StopForward:
                pass

    def dummy_inputs(self) -> Inputs:
        """A one-element batch (grey image or short text) for probing output shapes."""
        if self.modality == "text":
            return self.preprocess(["a photo of a cat"])
        return self.preprocess([Image.new("RGB", (64, 64), (128, 128, 128))])

    def __repr__(self) -> str:
        return f"LoadedModel({self.provenance.get('model')!r}, family={self.family}, tower={self.tower}, layers={self.num_layers})"


def find_blocks(model: nn.Module, n_layers: int) -> nn.ModuleList | None:
    """The ModuleList of `n_layers` transformer blocks (the shallowest one if several)."""
    found = [
        (name.count("."), name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) == n_layers
    ]
    return min(found, key=lambda x: (x[0], x[1]))[2] if found else None


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


def _provenance(model_id: str, config: Any, family: str, tower: str, cls_name: str) -> dict[str, Any]:
    prov: dict[str, Any] = {"model": model_id, "family": family, "tower": tower, "class": cls_name}
    rev = getattr(config, "_commit_hash", None)
    if os.path.isdir(model_id):
        prov["model"] = str(Path(model_id).resolve())
        prov["weights_sha256"] = weights_sha256(Path(model_id))
    else:
        if rev is None:
            try:
                from huggingface_hub import try_to_load_from_cache

                p = try_to_load_from_cache(model_id, "config.json")
                m = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(p)) if isinstance(p, str) else None
                rev = m.group(1) if m else None
            except Exception:  # provenance is best effort for hub ids
                rev = None
        prov["revision"] = rev
    return prov


def _image_processor(
    model_id: str, image_size: int, family: str, local_only: bool = False
) -> tuple[Any, str]:
    """(image processor, "model") from the model's own config, else (a family default, "default")."""
    import transformers as T

    try:
        return T.AutoImageProcessor.from_pretrained(model_id, local_files_only=local_only), "model"
    except (OSError, ValueError):
        pass
    s = int(image_size)
    if family == "siglip":
        return T.SiglipImageProcessor(size={"height": s, "width": s}), "default"
    if family == "vit":
        return T.ViTImageProcessor(size={"height": s, "width": s}), "default"
    # CLIP / DINOv2 / LLaVA: resize the shortest edge and centre-crop; DINOv2 normalises with ImageNet statistics.
    norm = {}
    if family == "dinov2":
        norm = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    return T.CLIPImageProcessor(
        size={"shortest_edge": s}, crop_size={"height": s, "width": s}, **norm
    ), "default"


def _with_projection(full: nn.Module, tower: str, config: Any) -> nn.Module:
    """A CLIP{Vision,Text}ModelWithProjection view sharing the modules of a full CLIPModel."""
    import copy

    import transformers as T

    if tower == "vision":
        cfg = copy.deepcopy(config.vision_config)
        cfg.projection_dim = config.projection_dim
        with torch.device("meta"):
            m = T.CLIPVisionModelWithProjection(cfg)
        m.vision_model, m.visual_projection = full.vision_model, full.visual_projection
    else:
        cfg = copy.deepcopy(config.text_config)
        cfg.projection_dim = config.projection_dim
        with torch.device("meta"):
            m = T.CLIPTextModelWithProjection(cfg)
        m.text_model, m.text_projection = full.text_model, full.text_projection
    return m.eval()


PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def refuse_pickle_only(model_dir: str | os.PathLike) -> None:
    """One line when a local model directory has pickle weights but no safetensors weights."""
    d = Path(model_dir)
    if not d.is_dir() or any(d.glob("*.safetensors")):
        return
    pickles = sorted(p.name for pat in PICKLE_WEIGHTS for p in d.glob(pat))
    if pickles:
        raise VsaeError(
            f"model {d} has only pickle weights ({', '.join(pickles[:3])}), which can run code when loaded; "
            "vsae loads safetensors only: convert it once with "
            "`AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)` where you trust it"
        )


def load(
    model_id_or_dir: str,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | str = torch.float32,
    tower: str | None = None,
) -> LoadedModel:
    """Load a supported model by hub id or local directory, or any nn.Module by
    ``python:package.module:factory`` / ``timm:NAME`` (see `vsae.models.custom`).

    `tower`: for CLIP checkpoints "vision" (default) or "text"; for LLaVA "vision" (default) or
    "language"; ignored (must be None or match) for single-tower models. A hub id that is not
    in the local cache fails at once when offline (`vsae.models.hub`).
    """
    import transformers as T

    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise VsaeError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    if str(model_id_or_dir).startswith(CUSTOM_PREFIXES):  # python:pkg.mod:factory, timm:NAME
        from vsae.models.custom import load_custom

        return load_custom(str(model_id_or_dir), device=device, dtype=dtype, tower=tower)
    local_only = local_files_only(str(model_id_or_dir))  # fails at once: not cached and offline
    try:
        config = T.AutoConfig.from_pretrained(model_id_or_dir, local_files_only=local_only)
    except (OSError, ValueError) as e:
        raise VsaeError(
            f"cannot load model {model_id_or_dir!r}: not a model directory with config.json and not in the "
            f"Hugging Face cache ({str(e).splitlines()[0][:120]}); give a local directory"
        ) from None
    mt = config.model_type
    fam_key, cls_name = family_for_model_type(mt)
    if cls_name not in ("CLIPModel", "SiglipModel", "LlavaForConditionalGeneration"):
        arch = (getattr(config, "architectures", None) or [None])[0]
        if arch in ALLOWED_ARCHITECTURES.get(mt, ()):
            cls_name = arch
    multi = {"clip": ("vision", "text"), "siglip": ("vision",), "llava": ("vision", "language")}
    towers = multi.get(mt, ("text",) if fam_key == "clip_text" else ("vision",))
    tower = tower or towers[0]
    if tower not in towers:
        raise VsaeError(f"tower {tower!r} not available for {mt}; valid: {', '.join(towers)}")
    refuse_pickle_only(model_id_or_dir)
    try:
        # safetensors only: a pickle checkpoint (pytorch_model.bin) can run code when loaded
        full = getattr(T, cls_name).from_pretrained(
            model_id_or_dir, dtype=dtype, local_files_only=local_only, use_safetensors=True
        )
    except (OSError, ValueError, RuntimeError) as e:
        raise VsaeError(
            f"cannot load weights of {model_id_or_dir!r} ({str(e).splitlines()[0][:160]}); "
            "vsae loads safetensors weights only"
        ) from None
    full.eval()

    sub_config = config
    if mt == "clip":
        model = _with_projection(full, tower, config)
        sub_config = config.vision_config if tower == "vision" else config.text_config
        fam_key = "clip" if tower == "vision" else "clip_text"
    elif mt == "siglip":
        model, sub_config = full.vision_model, config.vision_config
    elif mt == "llava":
        inner = full.model
        if tower == "vision":
            model, sub_config = inner.vision_tower, config.vision_config
            fam_key, _ = family_for_model_type(sub_config.model_type)
        else:
            model, sub_config = inner.language_model, config.text_config
            fam_key = "llava_lm"
    else:
        model = full
    spec: FamilySpec = FAMILIES[fam_key]
    model.to(device)
    if full is not model and mt != "llava":
        full.to(device)

    n_prefix = int(spec.has_cls) + int(getattr(sub_config, "num_register_tokens", 0) or 0)
    family = "llava" if mt == "llava" else spec.name
    provenance = _provenance(model_id_or_dir, config, family, tower, type(model).__name__)
    if spec.modality == "image":
        proc, origin = _image_processor(model_id_or_dir, sub_config.image_size, spec.name, local_only)
        preprocess: Callable = ImagePreprocessor(proc)
        if origin == "default":  # no preprocessor config in the model: say so in every store
            provenance["preprocess"] = f"default {type(proc).__name__} ({sub_config.image_size} px)"
    else:
        try:
            tok = T.AutoTokenizer.from_pretrained(model_id_or_dir, local_files_only=local_only)
        except (OSError, ValueError) as e:
            raise VsaeError(
                f"cannot load the tokenizer of {model_id_or_dir!r} ({str(e).splitlines()[0][:120]})"
            ) from None
        max_len = int(getattr(sub_config, "max_position_embeddings", 512))
        preprocess = TextPreprocessor(
            tok, min(max_len, int(getattr(tok, "model_max_length", max_len) or max_len))
        )
    return LoadedModel(
        model,
        preprocess,
        family=family,
        tower=tower,
        modality=spec.modality,
        blocks=find_blocks(model, int(sub_config.num_hidden_layers)),
        sublayer_names={"attn": spec.attn, "mlp": spec.mlp},
        embed_fields=spec.embed_fields,
        has_cls=spec.has_cls,
        n_prefix=n_prefix,
        provenance=provenance,
        full_model=full,
        dtype=dtype,
        forward_kwargs={"use_cache": False} if fam_key == "llava_lm" else None,
    )


def from_module(
    model: nn.Module,
    preprocess: Callable[[list], Inputs],
    *,
    name: str = "custom",
    blocks: str | Sequence[nn.Module] | None = None,
    attn: tuple[str, ...] = ("self_attn", "attn", "attention"),
    mlp: tuple[str, ...] = ("mlp",),
    has_cls: bool = False,
    n_prefix: int | None = None,
    modality: str = "image",
) -> LoadedModel:
    """Wrap any nn.Module with its preprocessing.

    `preprocess(images)` takes a list of PIL RGB images (strings for ``modality="text"``) and
    returns the model's input for the whole batch: a tensor (the model is called as
    ``model(x)``, e.g. [B, 3, H, W] float pixels) or a dict of tensors (called as
    ``model(**inputs)``), batch first. Floating tensors are moved to the model's device and dtype.

    `blocks`: the transformer (or CNN) blocks, in order: a dotted path to an indexable container
    in `model` (nn.ModuleList, nn.Sequential), or the container / a list of modules itself;
    enables resid/attn/mlp hooks. Otherwise only `module:<path>` and `embed` (the model's
    output) are available. Provenance records `name` and a sha256 of the parameters.
    """
    model.eval()
    block_list = _block_container(model, blocks) if blocks is not None else None
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    p = next(model.parameters(), None)
    return LoadedModel(
        model,
        preprocess,
        family="module",
        tower="module",
        modality=modality,
        blocks=block_list,
        sublayer_names={"attn": attn, "mlp": mlp},
        embed_fields=(),
        has_cls=has_cls,
        n_prefix=int(has_cls) if n_prefix is None else n_prefix,
        provenance={
            "model": name,
            "family": "module",
            "class": type(model).__name__,
            "weights_sha256": h.hexdigest(),
        },
        dtype=p.dtype if p is not None else torch.float32,
    )


def _block_container(model: nn.Module, blocks: str | Sequence[nn.Module]) -> Sequence[nn.Module]:
    """The blocks as an indexable sequence of modules (ModuleList, Sequential, list, tuple)."""
    found: Any = blocks
    if isinstance(blocks, str):
        try:
            found = model.get_submodule(blocks)
        except AttributeError:
            found = None
    ok = isinstance(found, nn.ModuleList | nn.Sequential | list | tuple) and len(found) > 0
    if not ok or not all(isinstance(b, nn.Module) for b in found):
        where = (
            f"{blocks!r} in {type(model).__name__}"
            if isinstance(blocks, str)
            else f"a {type(blocks).__name__}"
        )
        raise VsaeError(
            f"{where} is not an indexable container of blocks (nn.ModuleList, nn.Sequential or a list "
            "of modules); pass the dotted path of the blocks, e.g. blocks='blocks'"
        )
    return nn.ModuleList(found) if isinstance(found, list | tuple) else found
