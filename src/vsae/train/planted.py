"""Planted sparse data: activations made from a known random dictionary (tests and benches)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Planted:
    x_Nd: torch.Tensor  # the activations
    atoms_Md: torch.Tensor  # the planted unit-norm dictionary
    codes_NM: torch.Tensor  # the non-negative k-sparse codes


def make_planted(
    n: int, d: int, m: int, k: int, noise: float = 0.01, seed: int = 0, offset: float = 0.0
) -> Planted:
    """x = codes @ atoms + offset + noise; each row uses k random atoms with values in [0.5, 1.5]."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(m, d, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    idx = torch.rand(n, m, generator=g).argsort(dim=1)[:, :k]
    vals = 0.5 + torch.rand(n, k, generator=g)
    codes = torch.zeros(n, m).scatter_(1, idx, vals)
    x = codes @ atoms + noise * torch.randn(n, d, generator=g) + offset * torch.randn(d, generator=g)
    return Planted(x, atoms, codes)


def atom_recovery(atoms_Md: torch.Tensor, W_dec_Fd: torch.Tensor) -> float:
    """Mean over planted atoms of the best cosine similarity with a learned decoder row."""
    atoms_Md, W_dec_Fd = atoms_Md.detach(), W_dec_Fd.detach()
    a = atoms_Md / atoms_Md.norm(dim=1, keepdim=True)
    w = W_dec_Fd / W_dec_Fd.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return float((a @ w.T).max(dim=1).values.mean().detach())
