"""Token selection: which rows of a [B, T, d] activation tensor become store rows.

Selections: ``cls`` (token 0), ``mean`` (mean over patch tokens, CLS and register tokens
excluded), ``patches`` (every patch token), ``registers`` (the register tokens of DINOv2 / DINOv3
with registers, Darcet et al.: the prefix tokens after CLS), ``all`` (every token), ``random:K`` (K random patch
tokens per image, seeded by (seed, image index) so a resumed or sharded run picks the same
tokens -- as Pach et al. sample patch tokens for their steering SAE). For text the tokens are
those of the attention mask (padding excluded) and ``cls`` is not defined; an image model with
padded patch sequences (SigLIP 2 NaFlex) passes its patch mask the same way, so padding is never a row.

token_index is the token's position in the model's sequence (CLS = 0 when present; for text,
the position among the real tokens), and -1 for pooled rows (``mean``, or a [B, d] hook output).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from vsae.errors import VsaeError

SELECTIONS = ("cls", "mean", "patches", "all", "random:K", "registers")
_RANDOM_RE = re.compile(r"^random:(\d+)$")


@dataclass(frozen=True)
class TokenSelection:
    """A parsed token selection: `kind` in cls/mean/patches/all/random and `k` for random."""

    kind: str
    k: int = 0

    def __str__(self) -> str:
        return f"random:{self.k}" if self.kind == "random" else self.kind


def parse_selection(selection: str) -> TokenSelection:
    """Parse a selection string; one-line VsaeError listing the valid ones otherwise."""
    s = selection.strip()
    if s in ("cls", "mean", "patches", "registers", "all"):
        return TokenSelection(s)
    m = _RANDOM_RE.match(s)
    if m and int(m.group(1)) > 0:
        return TokenSelection("random", int(m.group(1)))
    raise VsaeError(f"unknown token selection {selection!r}; valid: {', '.join(SELECTIONS)} (K >= 1)")


def as_tokens(acts: torch.Tensor) -> torch.Tensor:
    """[B, T, d] and [B, d] unchanged; a [B, C, H, W] feature map as [B, H*W, C] tokens (row-major).

    The one layout rule shared by capture (extraction) and intervention; `from_tokens` undoes it.
    """
    if acts.ndim == 4:
        return acts.flatten(2).transpose(1, 2)
    if acts.ndim not in (2, 3):
        raise VsaeError(f"hook output has shape {tuple(acts.shape)}; need [B, T, d], [B, d] or [B, C, H, W]")
    return acts


def from_tokens(tokens: torch.Tensor, shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """Inverse of `as_tokens`: tokens in its layout back to a hook output of ``shape``
    ([B, H*W, C] -> [B, C, H, W]; [B, T, d] and [B, d] unchanged)."""
    shape = tuple(shape)
    if len(shape) == 4:
        B, C, H, W = shape
        return tokens.reshape(B, H * W, C).transpose(1, 2).reshape(B, C, H, W)
    return tokens.reshape(shape)


def random_positions(seed: int, image_id: int, n: int, k: int) -> np.ndarray:
    """K distinct positions in [0, n), sorted, a pure function of (seed, image_id)."""
    rng = np.random.default_rng([int(seed), int(image_id)])
    return np.sort(rng.choice(n, size=min(k, n), replace=False)).astype(np.int64)


def select_tokens(
    acts_BTd: torch.Tensor,
    selection: str | TokenSelection,
    has_cls: bool,
    image_ids: np.ndarray,
    seed: int = 0,
    n_prefix: int | None = None,
    attention_mask_BT: torch.Tensor | None = None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Select rows from one batch of activations.

    Parameters
    ----------
    acts_BTd: [B, T, d] token activations, [B, d] pooled ones (one row per input, token -1), or a
        [B, C, H, W] feature map (a CNN's; read as H*W tokens of width C, see `as_tokens`).
    selection: a selection string or TokenSelection.
    has_cls: token 0 is a CLS token.
    image_ids: [B] global image (or text) index of each batch element.
    seed: seed for ``random:K``.
    n_prefix: number of non-patch tokens at the start (CLS + registers); default ``int(has_cls)``.
    attention_mask_BT: 1 for real tokens and 0 for padding (text; SigLIP 2's padded patches).

    Returns
    -------
    rows_nd, image_idx_n (int64), token_idx_n (int64).
    """
    sel = selection if isinstance(selection, TokenSelection) else parse_selection(selection)
    ids_B = np.asarray(image_ids, dtype=np.int64)
    B = acts_BTd.shape[0]
    if len(ids_B) != B:
        raise ValueError(f"{len(ids_B)} image ids for a batch of {B}")
    acts_BTd = as_tokens(acts_BTd)
    if acts_BTd.ndim == 2:
        return acts_BTd, ids_B, np.full(B, -1, np.int64)
    if attention_mask_BT is not None:
        return _select_text(acts_BTd, sel, ids_B, seed, attention_mask_BT)
    T = acts_BTd.shape[1]
    prefix = int(has_cls) if n_prefix is None else int(n_prefix)
    P = T - prefix
    if sel.kind == "cls":
        if not has_cls:
            raise VsaeError("this model has no CLS token; use --tokens mean, patches, all or random:K")
        return acts_BTd[:, 0], ids_B, np.zeros(B, np.int64)
    if sel.kind == "registers":
        first = int(has_cls)
        if prefix <= first:
            raise VsaeError(
                "this model has no register tokens; use --tokens cls, mean, patches, all or random:K"
            )
        n = prefix - first
        rows = acts_BTd[:, first:prefix].reshape(B * n, acts_BTd.shape[2])
        return rows, np.repeat(ids_B, n), np.tile(np.arange(first, prefix, dtype=np.int64), B)
    if sel.kind == "mean":
        return acts_BTd[:, prefix:].float().mean(1).to(acts_BTd.dtype), ids_B, np.full(B, -1, np.int64)
    if sel.kind in ("patches", "all"):
        start = prefix if sel.kind == "patches" else 0
        n = T - start
        rows = acts_BTd[:, start:].reshape(B * n, acts_BTd.shape[2])
        return rows, np.repeat(ids_B, n), np.tile(np.arange(start, T, dtype=np.int64), B)
    if sel.k > P:
        raise VsaeError(f"random:{sel.k} asks for more tokens than the {P} patch tokens per image; lower K")
    pos_BK = np.stack([random_positions(seed, i, P, sel.k) for i in ids_B]) + prefix
    idx = torch.as_tensor(pos_BK, device=acts_BTd.device)
    rows = torch.gather(acts_BTd, 1, idx[:, :, None].expand(-1, -1, acts_BTd.shape[2]))
    return rows.reshape(-1, acts_BTd.shape[2]), np.repeat(ids_B, sel.k), pos_BK.reshape(-1)


def _select_text(
    acts_BTd: torch.Tensor, sel: TokenSelection, ids_B: np.ndarray, seed: int, mask_BT: torch.Tensor
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    mask_BT = mask_BT.to(acts_BTd.device).bool()
    B = acts_BTd.shape[0]
    if sel.kind in ("cls", "registers"):
        raise VsaeError(
            f"this model's padded token sequences (text, or NaFlex patches) have no "
            f"{'CLS' if sel.kind == 'cls' else 'register'} token; "
            "use --tokens all, mean or random:K (or --hook embed)"
        )
    if sel.kind == "mean":
        m = mask_BT[:, :, None].float()
        mean = (acts_BTd.float() * m).sum(1) / m.sum(1).clamp_min(1)
        return mean.to(acts_BTd.dtype), ids_B, np.full(B, -1, np.int64)
    pos_BT = (mask_BT.long().cumsum(1) - 1).cpu().numpy()
    mask_np = mask_BT.cpu().numpy()
    if sel.kind in ("patches", "all"):
        b, t = np.nonzero(mask_np)
    else:
        bs, ts = [], []
        for j in range(B):
            valid = np.nonzero(mask_np[j])[0]
            pick = valid[random_positions(seed, ids_B[j], len(valid), sel.k)]
            bs.append(np.full(len(pick), j))
            ts.append(pick)
        b, t = np.concatenate(bs).astype(np.int64), np.concatenate(ts).astype(np.int64)
    rows = acts_BTd[torch.as_tensor(b, device=acts_BTd.device), torch.as_tensor(t, device=acts_BTd.device)]
    return rows, ids_B[b], pos_BT[b, t].astype(np.int64)
