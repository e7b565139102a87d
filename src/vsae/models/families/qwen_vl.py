"""Qwen2.5-VL and Qwen3-VL vision towers (``--tower vision``; the language model is not a tower here).

Their vision transformer takes no ``[B, 3, H, W]`` batch: the processor cuts every image into
patches of ``temporal_patch_size x patch x patch`` pixels, orders each image's patches by merge
unit (``spatial_merge_size``² neighbouring patches that the merger later fuses into one language
token: order ``(h/m, w/m, m, m)``), and all images of a batch are packed into one flat sequence
``[S, C*T*P*P]`` with ``grid_thw`` [B, 3] giving each image's (t, h, w) patch grid. Qwen2.5-VL
then permutes the merge units window by window (``window_index``: most blocks attend within
windows of ``window_size`` pixels) and undoes that only after the merger; Qwen3-VL keeps the
order. Every block, attention and MLP output is thus a flat ``[S, d]`` sequence.

`QwenVisionModel` reshapes each hook's flat output back to per-image token grids, the layout of
every other family: ``resid.L``, ``attn.L`` and ``mlp.L`` give ``[B, h*w, d]`` with the patches
in raster order (token i = patch row i // w, column i % w; the window permutation undone), and
``embed`` gives the merger's output ``[B, (h/m)*(w/m), d_out]``, the tokens the language model
receives, in raster order of the merged grid. There is no CLS token (``--tokens cls`` is refused;
``mean``, ``patches``, ``random:K`` work). ``module:<path>`` hooks read the packed sequence as it
is. A splice (`vsae.steer.intervene`) edits the grids and writes them back packed (`pack`), so
vision-tower SAEs steer these models from Python.

One view per image: each image is resized (bicubic) to a square of ``16 * patch * merge`` pixels
(448 for Qwen2.5-VL: 32 x 32 patches, 256 language tokens; 512 for Qwen3-VL), kept within the
processor's min/max pixels, then given to the model's own image processor, so that every image
of a batch has the same grid. Without torchvision, transformers loads the processor's PIL
backend (``Qwen2VLImageProcessorPil``), which is all this needs; the video processors and the
full chat processor (``AutoProcessor``) need torchvision and are not used: ``vsae steer mllm``
and ``extract-mllm`` (which run it) are not available for these models.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from vsae.errors import VsaeError
from vsae.models import hf
from vsae.models.families.mllm import _image_processor
from vsae.models.family_registry import Family, LoadRequest, register_family
from vsae.models.loaded import LoadedModel
from vsae.models.points import HookPoint

CLASSES = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration", "qwen3_vl": "Qwen3VLForConditionalGeneration"}
VIEW_UNITS = 16  # merge units per side of the square view (16 * 28 = 448 px for Qwen2.5-VL)


def view_side(processor: Any) -> int:
    """The side of the square view: VIEW_UNITS merge units, within the processor's pixel limits."""
    factor = int(processor.patch_size) * int(processor.merge_size)
    size = getattr(processor, "size", None) or {}
    lo = int(size.get("shortest_edge") or getattr(processor, "min_pixels", 0) or 0)
    hi = int(size.get("longest_edge") or getattr(processor, "max_pixels", 0) or 0) or 1 << 62
    side = VIEW_UNITS * factor
    while side * side > hi and side > factor:
        side -= factor
    while side * side < lo:
        side += factor
    return side


class GridPreprocessor:
    """PIL images -> {"hidden_states": [S, C*T*P*P] packed patches, "grid_thw": [B, 3]}: each image
    resized to the square view, then patched by the model's own image processor."""

    def __init__(self, processor: Any):
        self.processor = processor
        self.side = view_side(processor)

    def __call__(self, images: list[Image.Image]) -> dict[str, torch.Tensor]:
        sq = [im.convert("RGB").resize((self.side, self.side), Image.Resampling.BICUBIC) for im in images]
        out = self.processor(images=sq, return_tensors="pt")
        return {"hidden_states": out["pixel_values"], "grid_thw": out["image_grid_thw"]}


def unpack(
    x_Sd: torch.Tensor, grid_thw: torch.Tensor, merge: int, window_index: torch.Tensor | None
) -> torch.Tensor:
    """A packed ``[S, d]`` patch sequence -> ``[B, t*h*w, d]``, each image's patches in raster
    order: the window permutation (merge units reordered by `window_index`) undone, then each
    image's ``(t, h/m, w/m, m, m)`` merge-unit order turned into ``(t, h, w)``."""
    S, d = x_Sd.shape
    unit = merge * merge
    if window_index is not None:
        inv = torch.argsort(window_index.to(x_Sd.device))
        x_Sd = x_Sd.reshape(S // unit, unit, d)[inv].reshape(S, d)
    images = []
    for (t, h, w), x in zip(grid_thw.tolist(), x_Sd.split([int(t * h * w) for t, h, w in grid_thw.tolist()])):
        g = x.reshape(t, h // merge, w // merge, merge, merge, d).permute(0, 1, 3, 2, 4, 5)
        images.append(g.reshape(t * h * w, d))
    return _stack(images)


def pack(
    x_BTd: torch.Tensor, grid_thw: torch.Tensor, merge: int, window_index: torch.Tensor | None
) -> torch.Tensor:
    """The inverse of `unpack`: per-image raster grids ``[B, t*h*w, d]`` -> the packed ``[S, d]``."""
    d = x_BTd.shape[-1]
    parts = []
    for (t, h, w), x in zip(grid_thw.tolist(), x_BTd):
        g = x.reshape(t, h // merge, merge, w // merge, merge, d).permute(0, 1, 3, 2, 4, 5)
        parts.append(g.reshape(t * h * w, d))
    x_Sd = torch.cat(parts)
    if window_index is not None:
        unit = merge * merge
        x_Sd = x_Sd.reshape(-1, unit, d)[window_index.to(x_Sd.device)].reshape(-1, d)
    return x_Sd


def _stack(images: list[torch.Tensor]) -> torch.Tensor:
    if len({x.shape[0] for x in images}) > 1:
        raise VsaeError(
            "the images of a batch have different patch grids; feed them through the model's "
            "GridPreprocessor (one square view per image)"
        )
    return torch.stack(images)


class _GridPoint(HookPoint):
    """A hook point whose flat packed output is reshaped to per-image grids by its model."""

    owner: QwenVisionModel

    def __init__(self, point: HookPoint, owner: QwenVisionModel):
        super().__init__(point.name, point.module, point.fields)
        object.__setattr__(self, "owner", owner)

    def read(self, output: Any) -> torch.Tensor:
        return self.owner.to_grid(self.name, super().read(output))

    def write(self, new: torch.Tensor) -> torch.Tensor:
        return self.owner.to_packed(self.name, new)


class QwenVisionModel(LoadedModel):
    """The vision tower of Qwen2.5-VL / Qwen3-VL with hooks reshaped to per-image token grids (see
    the module docstring); `grid_thw` and the window order of the current forward pass are kept."""

    def __init__(self, *args: Any, merge: int, window: tuple[int, int] | None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.merge = merge
        self.window = window  # (window_size, patch_size) of Qwen2.5-VL; None: no window order
        self.grid_thw: torch.Tensor | None = None
        self.model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        grid = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.grid_thw = None if grid is None else grid.detach().cpu()

    def window_index(self) -> torch.Tensor | None:
        """The merge-unit order of the current pass (None: the processor's order)."""
        if self.window is None or self.grid_thw is None:
            return None
        from transformers.vision_utils import get_vision_window_index

        index, _ = get_vision_window_index(
            self.grid_thw,
            spatial_merge_size=self.merge,
            window_size=self.window[0],
            patch_size=self.window[1],
        )
        return index

    def to_grid(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """A hook's flat output -> per-image tokens (``embed``: merged tokens, already in order)."""
        if self.grid_thw is None or x.ndim != 2:
            return x
        if name == "embed":
            n = [int(t * h * w) // (self.merge * self.merge) for t, h, w in self.grid_thw.tolist()]
            return _stack(list(x.split(n)))
        return unpack(x, self.grid_thw, self.merge, self.window_index())

    def to_packed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_grid` (a splice writes its edited grid back into the packed sequence)."""
        if self.grid_thw is None or x.ndim != 3:
            return x
        if name == "embed":
            return x.reshape(-1, x.shape[-1])
        return pack(x, self.grid_thw, self.merge, self.window_index())

    def resolve(self, hook: str) -> HookPoint:
        point = super().resolve(hook)
        return point if point.name.startswith("module:") else _GridPoint(point, self)


def load_qwen_vl(req: LoadRequest) -> LoadedModel:
    """The vision tower of a Qwen2.5-VL / Qwen3-VL checkpoint, with the model's image processor."""
    config = req.config
    hf.choose_tower(req, ("vision",), config.model_type)
    cls = CLASSES[config.model_type]
    full = hf.load_weights(req, cls)
    visual = full.model.visual.to(req.device)
    vc = config.vision_config
    proc = _image_processor(req.source, req.local_only)
    for key, want in (("patch_size", vc.patch_size), ("merge_size", vc.spatial_merge_size)):
        if int(getattr(proc, key, -1)) != int(want):
            raise VsaeError(
                f"the image processor of {req.source} has {key}={getattr(proc, key, None)}, the model {want}; "
                "save the model's own processor next to it"
            )
    window = (int(vc.window_size), int(vc.patch_size)) if config.model_type == "qwen2_5_vl" else None
    return QwenVisionModel(
        visual,
        GridPreprocessor(proc),
        family=config.model_type,
        tower="vision",
        modality="image",
        blocks=visual.blocks,
        sublayer_names={"attn": ("attn",), "mlp": ("mlp",)},
        embed_fields=("pooler_output",),
        has_cls=False,
        n_prefix=0,
        provenance=hf.provenance(req.source, config, config.model_type, "vision", type(visual).__name__),
        full_model=full,
        dtype=req.dtype or torch.float32,
        merge=int(vc.spatial_merge_size),
        window=window,
    )


for _type, _cls in CLASSES.items():
    register_family(Family(_type, load_qwen_vl, model_types={_type: _cls}, layout=None))
