"""Splice an SAE into a model at a hook point, with latent edits (Pach et al., steering).

The hooked module's output ``x`` [B, T, d] becomes

    decode(edit(encode(x))) + (x - decode(encode(x)))

i.e. the SAE's error term is kept, so without edits the model computes exactly what it computed
before. It is evaluated as ``x + (decode(edit(z)) - decode(z))`` so that an edit that changes
nothing leaves ``x`` bit-identical. ``keep_error=False`` replaces ``x`` by ``decode(edit(z))``
(reconstruction splicing, e.g. for downstream-loss evaluation).

Only a forward hook on the resolved module is added (prepended, so that it runs before hooks
that transformers installs lazily to record ``hidden_states``, which LLaVA reads its image
features from); nothing in the model is copied, replaced or monkey-patched. Modules returning
tuples or model outputs get their first tensor (or the hook's named field) replaced.

```python
edit = LatentEdit(latent=7, op="clamp", value=100.0)          # on every token
with intervene(lm, "resid.22", sae, [edit]):                  # context manager
    out = lm.full_model.generate(**inputs)
handle = splice(lm, "resid.22", sae, [edit]); ...; handle.remove()   # plain function
```
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from vsae.errors import VsaeError
from vsae.models import LoadedModel, resolve_hook
from vsae.models.hooks import HookPoint
from vsae.models.tokens import as_tokens, from_tokens
from vsae.steer.edits import LatentEdit, apply_edits


class Intervention:
    """A live splice: the forward hook and what it does. Remove with `.remove()` or use `with`.

    Attributes
    ----------
    point: the resolved hook point.
    edits: the latent edits applied on every forward call of the hooked module.
    calls: how many times the hook has fired.
    """

    def __init__(
        self,
        point: HookPoint,
        sae: Any,
        edits: Sequence[LatentEdit],
        pre_zero: bool,
        keep_error: bool,
        n_prefix: int | None,
    ):
        self.point = point
        self.sae = sae
        self.edits = tuple(edits)
        self.pre_zero = pre_zero
        self.keep_error = keep_error
        self.n_prefix = n_prefix
        self.calls = 0
        self._handle = point.module.register_forward_hook(self._hook, prepend=True)

    def _hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        self.calls += 1
        if not self.edits and self.keep_error:
            return None  # decode(z) + (x - decode(z)) == x
        x = self.point.read(output)
        return _write(output, self.point, self.point.write(self.transform(x)))

    @torch.no_grad()
    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The spliced activations for hooked activations ``x``: [B, T, d], [B, d], or a
        [B, C, H, W] feature map read as H*W tokens of width C -- the layout extraction stores
        (`vsae.models.tokens.as_tokens`), written back in the output's own layout."""
        x_BTd = as_tokens(x)
        if x_BTd.ndim == 2:
            x_BTd = x_BTd[:, None]
        d_in = getattr(getattr(self.sae, "cfg", None), "d_in", x_BTd.shape[-1])
        if x_BTd.shape[-1] != d_in:
            layout = f" (its {list(x.shape)} output read as [B, H*W, C] tokens)" if x.ndim == 4 else ""
            raise VsaeError(
                f"hook {self.point.name} has width {x_BTd.shape[-1]}{layout} but the SAE's d_in is {d_in}"
            )
        B, T, d = x_BTd.shape
        n_prefix = self.n_prefix if self.n_prefix is not None else (0 if x.ndim == 4 else 1)
        p = next(self.sae.parameters(), None)
        dev, dt = (p.device, p.dtype) if p is not None else (x.device, torch.float32)
        x_Nd = x_BTd.reshape(B * T, d).to(dev, dt)
        z_NF = self.sae.encode(x_Nd)
        z_edit = apply_edits(z_NF.reshape(B, T, -1), self.edits, self.pre_zero, n_prefix).reshape(B * T, -1)
        x_hat_edit = self.sae.decode(z_edit)
        if self.keep_error:
            out = x_BTd + (x_hat_edit - self.sae.decode(z_NF)).to(x.device, x.dtype).reshape(B, T, d)
        else:
            out = x_hat_edit.to(x.device, x.dtype).reshape(B, T, d)
        return from_tokens(out, x.shape)

    def remove(self) -> None:
        """Remove the forward hook (the model computes as before)."""
        self._handle.remove()

    def __enter__(self) -> Intervention:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _write(output: Any, point: HookPoint, new: torch.Tensor) -> Any:
    """``output`` with its hooked tensor replaced by ``new`` (same container type)."""
    if torch.is_tensor(output):
        return new
    for f in point.fields:
        if getattr(output, f, None) is not None:
            output[f] = new  # transformers ModelOutput: item and attribute stay in sync
            return output
    if isinstance(output, dict):
        key = next(iter(output))
        output[key] = new
        return output
    if isinstance(output, tuple):
        return (new, *output[1:])
    if isinstance(output, list):
        return [new, *output[1:]]
    raise VsaeError(f"cannot splice into {point.name}: its output is a {type(output).__name__}")


def resolve_point(target: Any, hook: str | nn.Module) -> tuple[HookPoint, int | None]:
    """(hook point, number of prefix tokens) for a LoadedModel + hook name, an nn.Module +
    ``module:<path>``, or a module given directly. Prefix tokens (CLS, registers) are the
    LoadedModel's; None otherwise (then 1 for token outputs, 0 for [B, C, H, W] feature maps)."""
    if isinstance(hook, nn.Module):
        return HookPoint(f"module:{type(hook).__name__}", hook), getattr(target, "n_prefix", None)
    if isinstance(target, LoadedModel):
        return resolve_hook(target, hook), target.n_prefix
    if isinstance(target, nn.Module):
        if not hook.startswith("module:"):
            raise VsaeError(
                f"hook {hook!r} needs a model loaded with vsae.models.load; on a plain nn.Module use module:<path>"
            )
        path = hook[len("module:") :]
        try:
            return HookPoint(hook, target.get_submodule(path)), None
        except AttributeError:
            raise VsaeError(f"no sub-module {path!r} in {type(target).__name__}") from None
    raise VsaeError(f"cannot intervene on a {type(target).__name__}; give a LoadedModel or an nn.Module")


def splice(
    target: Any,
    hook: str | nn.Module,
    sae: Any,
    edits: Sequence[LatentEdit] = (),
    *,
    pre_zero: bool = False,
    keep_error: bool = True,
    n_prefix: int | None = None,
) -> Intervention:
    """Splice ``sae`` (anything with ``encode``/``decode``) into ``target`` at ``hook`` with
    ``edits``; returns the live `Intervention` (call ``.remove()`` to undo).

    ``n_prefix``: tokens before the patches (CLS, registers) for ``tokens="patches"``; taken
    from the LoadedModel when not given.
    """
    if not hasattr(sae, "encode") or not hasattr(sae, "decode"):
        raise VsaeError(
            f"{type(sae).__name__} is not an SAE (needs encode and decode); load one with vsae.sae.load"
        )
    point, prefix = resolve_point(target, hook)
    return Intervention(point, sae, edits, pre_zero, keep_error, prefix if n_prefix is None else n_prefix)


@contextlib.contextmanager
def intervene(
    target: Any,
    hook: str | nn.Module,
    sae: Any,
    edits: Sequence[LatentEdit] = (),
    **kw: Any,
) -> Iterator[Intervention]:
    """Context manager form of `splice`: the SAE is spliced in inside the ``with`` block only."""
    h = splice(target, hook, sae, edits, **kw)
    try:
        yield h
    finally:
        h.remove()
