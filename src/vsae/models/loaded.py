"""`LoadedModel`: a model ready for capture (the unmodified module, its preprocessing, its layout)
and the one hook-name scheme every family shares.

Hook names:
- ``resid.L``: output of transformer block L (the residual stream after the block);
- ``attn.L`` / ``mlp.L``: the attention / MLP sub-layer's contribution to the residual stream
  (the family names the sub-modules: `LoadedModel.sublayer_names`);
- ``embed``: the final projected embedding (the family's `embed_fields`), or the model output
  for a wrapped module;
- ``module:<dotted.path>``: the output of any named sub-module.
Negative L counts from the end. A family with hook names of its own subclasses `LoadedModel`
and overrides `resolve`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch import nn

from vsae.errors import VsaeError
from vsae.models.points import HookPoint, StopForward

Inputs = dict[str, torch.Tensor] | torch.Tensor
Blocks = nn.ModuleList | nn.Sequential | Sequence[nn.Module]  # indexable, in order
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_LAYER_RE = re.compile(r"^(resid|attn|mlp)\.(-?\d+)$")


def parse_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype from its name ("float32" | "float16" | "bfloat16") or itself."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise VsaeError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    return DTYPES[dtype]


class LoadedModel:
    """A model ready for capture: the unmodified module, its preprocessing and its layout.

    Attributes
    ----------
    model: the module forward hooks are placed on (vision tower, text encoder, LM, or the user's).
    full_model: what was loaded (e.g. the whole LlavaForConditionalGeneration or CLIPModel).
    family: the family's name ("clip" | "clip_text" | "siglip" | "siglip2" | "dinov2" | "dinov3" |
        "aimv2" | "vit" | "t5_text" | "llava" | "llava_next" | "gemma3" | "idefics3" ... |
        "module" | a registered family's).
    tower: "vision" | "text" | "language" | "module".
    modality: "image" | "text".
    preprocess: list of PIL images (or strings) -> model inputs.
    blocks: the transformer blocks (None if unknown, e.g. a CNN); num_layers = len(blocks).
    sublayer_names: {"attn": names, "mlp": names} of the sub-modules inside a block whose
        outputs are the sub-layers' contributions to the residual stream (first present wins).
    embed_fields: model-output fields read by the `embed` hook (first present wins); empty:
        `embed` is the model output for a wrapped module, undefined otherwise.
    has_cls, n_prefix: token 0 is CLS; CLS + register tokens before the patches.
    provenance: JSON-able dict (model id, family, class, revision or weights_sha256).
    forward_kwargs: extra keyword arguments of every forward call (e.g. use_cache=False for LMs).
    token_mask: the input that marks real tokens (1) and padding (0), so that padding is never
        selected: ``attention_mask`` for text, ``pixel_attention_mask`` for SigLIP 2 NaFlex,
        None for fixed-length image tokens.
    """

    def __init__(
        self,
        model: nn.Module,
        preprocess: Callable[[list], Inputs],
        *,
        family: str,
        tower: str,
        modality: str,
        blocks: Blocks | None,
        sublayer_names: dict[str, tuple[str, ...]],
        embed_fields: tuple[str, ...],
        has_cls: bool,
        n_prefix: int,
        provenance: dict[str, Any],
        full_model: nn.Module | None = None,
        dtype: torch.dtype = torch.float32,
        forward_kwargs: dict[str, Any] | None = None,
        token_mask: str | None = None,
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
        self.token_mask = (
            token_mask if token_mask is not None else ("attention_mask" if modality == "text" else None)
        )

    @property
    def num_layers(self) -> int:
        """Number of transformer blocks (0 when the blocks are unknown)."""
        return len(self.blocks) if self.blocks is not None else 0

    @property
    def device(self) -> torch.device:
        """The device of the hooked module's parameters (cpu for a parameterless module)."""
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def resolve(self, hook: str) -> HookPoint:
        """Resolve a hook name to a HookPoint; one-line VsaeError listing the valid hooks otherwise."""
        hook = hook.strip()
        if hook.startswith("module:"):
            return self._resolve_module(hook[len("module:") :])
        if hook == "embed":
            if self.family == "module":
                return HookPoint("embed", self.model)
            if not self.embed_fields:
                raise VsaeError(
                    f"hook 'embed' is not defined for {self.family} ({self.tower}); valid: {self.valid_hooks()}"
                )
            return HookPoint("embed", self.model, self.embed_fields)
        m = _LAYER_RE.match(hook)
        if not m:
            raise VsaeError(f"unknown hook {hook!r}; valid: {self.valid_hooks()}")
        return self._resolve_layer(hook, m.group(1), int(m.group(2)))

    def _resolve_module(self, path: str) -> HookPoint:
        try:
            mod = self.model.get_submodule(path) if path else None
        except AttributeError:
            mod = None
        if mod is None:
            raise VsaeError(
                f"no sub-module {path!r} in {type(self.model).__name__}; valid: {self.valid_hooks()}"
            )
        return HookPoint(f"module:{path}", mod)

    def _resolve_layer(self, hook: str, kind: str, layer: int) -> HookPoint:
        n = self.num_layers
        if not n or self.blocks is None:
            raise VsaeError(
                f"hook {hook!r} needs transformer blocks, which this model has none of; valid: {self.valid_hooks()}"
            )
        if not -n <= layer < n:
            raise VsaeError(f"layer {layer} out of range in hook {hook!r}; valid: {self.valid_hooks()}")
        layer %= n
        block = self.blocks[layer]
        if kind == "resid":
            return HookPoint(f"resid.{layer}", block)
        names = self.sublayer_names[kind]
        for name in names:  # a name or a dotted path inside the block (T5: layer.0.SelfAttention)
            try:
                sub = block.get_submodule(name)
            except AttributeError:
                continue
            return HookPoint(f"{kind}.{layer}", sub)
        raise VsaeError(
            f"block {layer} of {self.family} has no {kind} sub-module ({'/'.join(names)}); use module:<path> instead"
        )

    def valid_hooks(self) -> str:
        """One line listing the hooks valid for this model."""
        parts = []
        if self.num_layers:
            n = self.num_layers
            parts.append(f"resid.L, attn.L, mlp.L for L in 0..{n - 1} (or -{n}..-1)")
        if self.embed_fields or self.family == "module":
            parts.append("embed")
        parts.append("module:<dotted.path> (e.g. module:" + _example_module(self.model) + ")")
        return ", ".join(parts)

    def hook_module(self, hook: str) -> nn.Module:
        """The module a hook name resolves to ("resid.L" | "mlp.L" | "attn.L" | "embed" | "module:a.b")."""
        return self.resolve(hook).module

    def module_path(self, hook: str) -> str | None:
        """The dotted path in ``self.model`` of the module a hook reads (``vision_model.encoder.layers.5``
        for ``resid.5`` of CLIP: what SAELens users attach to); "" for the model itself, None if absent."""
        mod = self.hook_module(hook)
        return next((name for name, m in self.model.named_modules() if m is mod), None)

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


def _example_module(model: nn.Module) -> str:
    names = [n for n, _ in model.named_modules() if n]
    return names[min(len(names) - 1, 3)] if names else "<name>"


def find_blocks(model: nn.Module, n_layers: int) -> nn.ModuleList | None:
    """The ModuleList of `n_layers` transformer blocks (the shallowest one if several)."""
    found = [
        (name.count("."), name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) == n_layers
    ]
    return min(found, key=lambda x: (x[0], x[1]))[2] if found else None
