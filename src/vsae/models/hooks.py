"""Named hook points and activation capture with forward hooks on the unmodified model.

Hook names (one scheme for every family):
- ``resid.L``: output of transformer block L (the residual stream after the block);
- ``attn.L`` / ``mlp.L``: the attention / MLP sub-layer's contribution to the residual stream;
- ``embed``: the final projected embedding (``image_embeds`` / ``text_embeds``), or the pooled
  output for models without a projection;
- ``module:<dotted.path>``: the output of any named sub-module.
Negative L counts from the end. Capture stops the forward pass once every requested hook has
fired (a private exception raised in the last hook), so shallow hooks cost a shallow forward.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vsae.errors import VsaeError

if TYPE_CHECKING:
    from vsae.models.loading import LoadedModel

_LAYER_RE = re.compile(r"^(resid|attn|mlp)\.(-?\d+)$")


class StopForward(Exception):
    """Raised inside a hook to end the forward pass once all requested activations are captured."""


@dataclass(frozen=True)
class HookPoint:
    """A resolved hook: canonical name, the module hooked and how to read a tensor from its output.

    `fields` names model-output attributes to read (first present wins); empty means "the first
    tensor of the output" (modules returning tuples give their first element).
    """

    name: str
    module: nn.Module
    fields: tuple[str, ...] = ()

    def read(self, output: Any) -> torch.Tensor:
        """The captured tensor from a module's forward output."""
        for f in self.fields:
            v = getattr(output, f, None)
            if v is not None:
                return v
        if self.fields:
            raise VsaeError(f"hook {self.name}: the model output has none of {list(self.fields)}")
        return _first_tensor(output)


def _first_tensor(output: Any) -> torch.Tensor:
    if torch.is_tensor(output):
        return output
    if isinstance(output, dict):  # transformers ModelOutput is an OrderedDict
        output = list(output.values())
    if isinstance(output, list | tuple) and output and torch.is_tensor(output[0]):
        return output[0]
    raise VsaeError(f"hooked module returned {type(output).__name__}, not a tensor; hook another module")


def valid_hooks_text(lm: LoadedModel) -> str:
    """One line listing the hooks valid for `lm`."""
    parts = []
    if lm.num_layers:
        n = lm.num_layers
        parts.append(f"resid.L, attn.L, mlp.L for L in 0..{n - 1} (or -{n}..-1)")
    if lm.embed_fields or lm.family == "module":
        parts.append("embed")
    parts.append("module:<dotted.path> (e.g. module:" + _example_module(lm.model) + ")")
    return ", ".join(parts)


def _example_module(model: nn.Module) -> str:
    names = [n for n, _ in model.named_modules() if n]
    return names[min(len(names) - 1, 3)] if names else "<name>"


def resolve_hook(lm: LoadedModel, hook: str) -> HookPoint:
    """Resolve a hook name on `lm` to a HookPoint; one-line VsaeError listing valid hooks otherwise."""
    hook = hook.strip()
    if hook.startswith("module:"):
        path = hook[len("module:") :]
        try:
            mod = lm.model.get_submodule(path) if path else None
        except AttributeError:
            mod = None
        if mod is None:
            raise VsaeError(
                f"no sub-module {path!r} in {type(lm.model).__name__}; valid: {valid_hooks_text(lm)}"
            )
        return HookPoint(f"module:{path}", mod)
    if hook == "embed":
        if lm.family == "module":
            return HookPoint("embed", lm.model)
        if not lm.embed_fields:
            raise VsaeError(
                f"hook 'embed' is not defined for {lm.family} ({lm.tower}); valid: {valid_hooks_text(lm)}"
            )
        return HookPoint("embed", lm.model, lm.embed_fields)
    m = _LAYER_RE.match(hook)
    if not m:
        raise VsaeError(f"unknown hook {hook!r}; valid: {valid_hooks_text(lm)}")
    kind, layer = m.group(1), int(m.group(2))
    n = lm.num_layers
    if not n:
        raise VsaeError(
            f"hook {hook!r} needs transformer blocks, which this model has none of; valid: {valid_hooks_text(lm)}"
        )
    if not -n <= layer < n:
        raise VsaeError(f"layer {layer} out of range in hook {hook!r}; valid: {valid_hooks_text(lm)}")
    layer %= n
    block = lm.blocks[layer]
    if kind == "resid":
        return HookPoint(f"resid.{layer}", block)
    names = lm.sublayer_names[kind]
    for name in names:
        if hasattr(block, name) and isinstance(getattr(block, name), nn.Module):
            return HookPoint(f"{kind}.{layer}", getattr(block, name))
    raise VsaeError(
        f"block {layer} of {lm.family} has no {kind} sub-module ({'/'.join(names)}); use module:<path> instead"
    )


class Capture:
    """Context manager capturing the outputs of hook points during `lm.run`.

    `.outputs[name]` holds each hook's tensor after the run ([B, T, d] token activations, or
    [B, d] for pooled outputs); `.output` is the single one when one hook was asked for. A
    module called several times in one forward pass contributes its first call. Each tensor is
    the value at its hook point: a copy is kept whenever the forward pass continues after the
    hook fired (the last hook of an early-stopped pass needs none).
    """

    def __init__(self, lm: LoadedModel, hooks: Sequence[str] | str, stop_early: bool = True):
        self.lm = lm
        names = [hooks] if isinstance(hooks, str) else list(hooks)
        self.points = [resolve_hook(lm, h) for h in names]
        self.stop_early = stop_early
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.points]

    @property
    def output(self) -> torch.Tensor:
        if len(self.points) != 1:
            raise ValueError("several hooks captured: use .outputs[name]")
        return self.outputs[self.points[0].name]

    def _make_hook(self, point: HookPoint) -> Callable:
        wanted = len({p.name for p in self.points})

        def hook(module, args, output):
            if point.name not in self.outputs:
                t = point.read(output)
                last = len(self.outputs) + 1 == wanted
                if not (self.stop_early and last):
                    # The forward pass goes on: an in-place op downstream (ReLU(inplace=True)
                    # after a BatchNorm ...) could overwrite the module's output; keep a copy.
                    t = t.detach().clone()
                self.outputs[point.name] = t
            if self.stop_early and len(self.outputs) == wanted:
                raise StopForward
            return None

        return hook

    def __enter__(self) -> Capture:
        root = self.lm.model
        # A new forward pass of the model clears what the previous one captured.
        self._handles.append(root.register_forward_pre_hook(lambda m, a: self.outputs.clear()))
        for p in self.points:
            self._handles.append(p.module.register_forward_hook(self._make_hook(p)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def capture(lm: LoadedModel, hooks: Sequence[str] | str, stop_early: bool = True) -> Capture:
    """Capture the activations at `hooks` (a name or a list) during `lm.run(...)` calls."""
    return Capture(lm, hooks, stop_early=stop_early)
