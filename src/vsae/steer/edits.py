"""Latent edits: what to do to which SAE latents on which tokens.

Pach et al. ("Sparse autoencoders learn monosemantic features in vision-language models")
steer LLaVA by *clamping* one SAE latent of the vision encoder to a fixed value (100) on every
token, optionally zeroing all other latents first (their ``pre_zero``). The same mechanism
covers adding to, scaling and ablating (zeroing) latents, on all tokens, the CLS token, the
patch tokens, a list of token positions or a boolean token mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import torch

from vsae.errors import VsaeError
from vsae.steer.steer_config import OPS as OPS  # the Literal types' values, defined once (torch-free)
from vsae.steer.steer_config import TOKEN_SETS as TOKEN_SETS

# "all" | "cls" | "patches" | token positions | bool mask [T] or [B, T]
Tokens = Union[str, tuple[int, ...], torch.Tensor]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True, eq=False)
class LatentEdit:
    """One edit of one SAE latent.

    Attributes
    ----------
    latent: index f of the latent in the SAE dictionary (0 <= f < d_sae).
    op: ``clamp`` (z_f := value), ``add`` (z_f += value), ``scale`` (z_f *= value) or
        ``ablate`` (z_f := 0; value is ignored).
    value: the operand of the op (the paper clamps to 100).
    tokens: where the edit applies: ``"all"`` tokens, ``"cls"`` (token 0), ``"patches"``
        (every token but the first ``n_prefix`` ones: CLS and registers), a tuple of token
        positions, or a boolean mask tensor [T] or [B, T] over the hooked tokens.
    """

    latent: int
    op: str = "clamp"
    value: float = 100.0
    tokens: Tokens = "all"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise VsaeError(f"unknown latent edit op {self.op!r}; use one of {', '.join(OPS)}")
        if int(self.latent) != self.latent or self.latent < 0:
            raise VsaeError(f"latent index must be a non-negative integer, got {self.latent!r}")
        object.__setattr__(self, "latent", int(self.latent))
        object.__setattr__(self, "value", float(self.value))
        t = self.tokens
        if isinstance(t, str):
            if t not in TOKEN_SETS:
                raise VsaeError(
                    f"unknown token set {t!r}; use one of {', '.join(TOKEN_SETS)}, positions or a mask"
                )
        elif isinstance(t, torch.Tensor):
            if t.dtype != torch.bool or t.ndim not in (1, 2):
                raise VsaeError("a token mask must be a bool tensor [T] or [B, T]")
        else:
            try:
                object.__setattr__(self, "tokens", tuple(int(i) for i in t))
            except TypeError:
                raise VsaeError(
                    f"tokens must be 'all', 'cls', 'patches', positions or a bool mask, got {t!r}"
                ) from None

    def token_mask(
        self, B: int, T: int, n_prefix: int = 1, device: torch.device | None = None
    ) -> torch.Tensor:
        """Bool [B, T]: the tokens this edit applies to."""
        t = self.tokens
        if isinstance(t, torch.Tensor):
            m = t.to(device)
            if m.shape[-1] != T or (m.ndim == 2 and m.shape[0] != B):
                raise VsaeError(
                    f"token mask of shape {tuple(m.shape)} does not fit activations [B={B}, T={T}]"
                )
            return m.expand(B, T) if m.ndim == 1 else m
        m = torch.zeros(B, T, dtype=torch.bool, device=device)
        if t == "all":
            m[:] = True
        elif t == "cls":
            m[:, 0] = True
        elif t == "patches":
            m[:, n_prefix:] = True
        else:
            pos = torch.tensor(t, dtype=torch.long)
            if len(pos) and (pos.max() >= T or pos.min() < -T):
                raise VsaeError(f"token positions {t} out of range for {T} tokens")
            m[:, pos] = True
        return m


def apply_edits(
    z_BTF: torch.Tensor, edits: tuple[LatentEdit, ...], pre_zero: bool = False, n_prefix: int = 1
) -> torch.Tensor:
    """The edited latents (a new tensor; ``z_BTF`` is not modified).

    Edits apply in order. With ``pre_zero`` every latent is first zeroed on the tokens that any
    edit touches (Pach et al.'s ``pre_zero``), so only the edited latents remain there.
    """
    B, T, F = z_BTF.shape
    out = z_BTF.clone()
    masks = []
    for e in edits:
        if e.latent >= F:
            raise VsaeError(f"latent {e.latent} out of range: the SAE has {F} latents")
        masks.append(e.token_mask(B, T, n_prefix, z_BTF.device))
    if pre_zero and edits:
        touched_BT = torch.stack(masks).any(0)
        out[touched_BT] = 0.0
    for e, m_BT in zip(edits, masks):
        col = out[..., e.latent]
        if e.op == "clamp":
            new = torch.full_like(col, e.value)
        elif e.op == "add":
            new = col + e.value
        elif e.op == "scale":
            new = col * e.value
        else:  # ablate
            new = torch.zeros_like(col)
        out[..., e.latent] = torch.where(m_BT, new, col)
    return out


def prompt_list(prompts: Sequence[str], sae: object, hook: str | None, edits: Sequence) -> list[str]:
    """The prompts of a text-to-image generation as a list, checked with its steering arguments:
    at least one prompt, an SAE and a hook together or neither, edits only with an SAE."""
    prompts = list(prompts)
    if not prompts:
        raise VsaeError("the prompt list is empty; give at least one prompt")
    if (sae is None) != (hook is None):
        raise VsaeError("give both an SAE and a hook to steer, or neither")
    if edits and sae is None:
        raise VsaeError("latent edits need an SAE and a hook")
    return prompts
