"""Activation capture with forward hooks on the unmodified model.

Hook names are resolved by the model (`LoadedModel.resolve`: ``resid.L``, ``attn.L``,
``mlp.L``, ``embed``, ``module:<path>``). Capture stops the forward pass once every requested
hook has fired (`StopForward`, raised in the last hook), so shallow hooks cost a shallow forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from vsae.models.loaded import LoadedModel
from vsae.models.points import HookPoint, StopForward

__all__ = ["Capture", "HookPoint", "StopForward", "capture", "resolve_hook"]


def resolve_hook(lm: LoadedModel, hook: str) -> HookPoint:
    """Resolve a hook name on `lm` to a HookPoint; one-line VsaeError listing valid hooks otherwise."""
    return lm.resolve(hook)


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
        self.points = [lm.resolve(h) for h in names]
        self.stop_early = stop_early
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[Any] = []

    @property
    def names(self) -> list[str]:
        """Canonical names of the captured hooks, in the order asked."""
        return [p.name for p in self.points]

    @property
    def output(self) -> torch.Tensor:
        """The captured tensor when one hook was asked for."""
        if len(self.points) != 1:
            raise ValueError("several hooks captured: use .outputs[name]")
        return self.outputs[self.points[0].name]

    def _make_hook(self, point: HookPoint) -> Callable[[nn.Module, Any, Any], None]:
        wanted = len({p.name for p in self.points})

        def hook(module: nn.Module, args: Any, output: Any) -> None:
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

    def _clear(self, module: nn.Module, args: Any) -> None:
        self.outputs.clear()

    def __enter__(self) -> Capture:
        root = self.lm.model
        # A new forward pass of the model clears what the previous one captured.
        self._handles.append(root.register_forward_pre_hook(self._clear))
        for p in self.points:
            self._handles.append(p.module.register_forward_hook(self._make_hook(p)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


def capture(lm: LoadedModel, hooks: Sequence[str] | str, stop_early: bool = True) -> Capture:
    """Capture the activations at `hooks` (a name or a list) during `lm.run(...)` calls."""
    return Capture(lm, hooks, stop_early=stop_early)
