"""Matryoshka BatchTopK SAE (Bussmann et al. 2025; Nabeshima 2024; used by Pach et al.).

The dictionary is split into groups (fractions of F, e.g. 0.0625/0.125/0.25/0.5625); the
prefix made of the first m groups must reconstruct the input on its own. Latents are chosen
by BatchTopK over the whole dictionary; the loss is the sum over prefixes of the prefix
reconstruction error (plus the aux-k loss on the full reconstruction).
Outside training (``.eval()``) the latents are those of the inference threshold, as in
``BatchTopKSAE.select``, so a row's output never depends on its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from vsae.errors import VsaeError
from vsae.sae.arch_registry import register_arch
from vsae.sae.archs.batchtopk import BatchTopKConfig, BatchTopKSAE
from vsae.sae.base import SAEOutput, mse_sum
from vsae.sae.sae_config import DEFAULT_GROUPS, SAEConfig
from vsae.sae.sparse import Pattern, sparse_decode
from vsae.sae.step import fixed_shapes_on
from vsae.shapes import Bool, Float, Tensor


@dataclass(frozen=True, kw_only=True)
class MatryoshkaConfig(BatchTopKConfig):
    """A Matryoshka BatchTopK SAE's settings: those of
    :class:`vsae.sae.archs.batchtopk.BatchTopKConfig` and

    Attributes
    ----------
    groups: group fractions of F (sum to 1); prefix m = the first m groups.
    """

    arch: str = "matryoshka"
    groups: tuple[float, ...] = DEFAULT_GROUPS

    def check(self) -> None:
        super().check()
        object.__setattr__(self, "groups", tuple(float(g) for g in self.groups))
        if not self.groups or any(g <= 0 for g in self.groups) or abs(sum(self.groups) - 1) > 1e-6:
            raise VsaeError(f"--groups {self.groups} must be positive fractions summing to 1")
        if min(self.group_sizes) <= 0:
            raise VsaeError(f"--groups {self.groups} give an empty group for d_sae={self.d_sae}")

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Sizes of the groups (the last absorbs rounding); sum = d_sae."""
        sizes = [round(g * self.d_sae) for g in self.groups[:-1]]
        return (*sizes, self.d_sae - sum(sizes))

    @property
    def nested_groups(self) -> tuple[int, ...]:
        """The nested groups, reported separately (``group_sizes``)."""
        return self.group_sizes


def _prefix_ends(cfg: MatryoshkaConfig) -> list[int]:
    ends, acc = [], 0
    for s in cfg.group_sizes:
        acc += s
        ends.append(acc)
    return ends


@register_arch(
    "matryoshka", uses_k=True, saelens="jumprelu", saelens_training="matryoshka_batchtopk", nested=True
)
class MatryoshkaSAE(BatchTopKSAE):
    """BatchTopK whose nested prefixes of groups (``MatryoshkaConfig.groups``) each reconstruct."""

    config_class = MatryoshkaConfig
    cfg: MatryoshkaConfig

    @classmethod
    def saelens_training_details(cls, cfg: SAEConfig) -> dict[str, Any]:
        assert isinstance(cfg, MatryoshkaConfig)
        return {**super().saelens_training_details(cfg), "matryoshka_widths": _prefix_ends(cfg)}

    @classmethod
    def config_from_saelens(cls, details: dict[str, Any], d_in: int, d_sae: int) -> dict[str, Any]:
        widths = [int(x) for x in details["matryoshka_widths"]]
        if widths[-1] != d_sae:
            widths.append(d_sae)
        groups = tuple((b - a) / d_sae for a, b in zip([0, *widths[:-1]], widths))
        return {**super().config_from_saelens(details, d_in, d_sae), "groups": groups}

    @property
    def prefix_ends(self) -> list[int]:
        """End (exclusive) latent index of each prefix."""
        return _prefix_ends(self.cfg)

    def prefix_reconstructions(
        self, x_Bd: Float[Tensor, "B d"], z_BF: Float[Tensor, "B F"]
    ) -> list[Float[Tensor, "B d"]]:
        """Dense-code reconstructions by each prefix (evaluation helper)."""
        return [torch.addmm(self.b_dec_d, z_BF[:, :e], self.W_dec_Fd[:e]) for e in self.prefix_ends]

    def forward(
        self,
        x_Bd: Float[Tensor, "B d"],
        dead_F: Bool[Tensor, " F"] | None = None,
        sparsity_scale: float = 1.0,
    ) -> SAEOutput:
        pre = self._pre_acts_nograd(x_Bd)
        row, col, extra = self.select_for_step(pre)
        codes = self._sparse_codes(x_Bd, pre, row, col)
        if self.training:
            self.update_threshold(codes.val_N.detach())
        B = x_Bd.shape[0]
        partial = self.b_dec_d.expand(B, -1)
        prefix_mse = []
        start = 0
        full = Pattern(codes.row_N, codes.col_N, B, self.cfg.d_sae)
        for end in self.prefix_ends:
            m = (codes.col_N >= start) & (codes.col_N < end)
            if fixed_shapes_on():  # same shapes every step: the group's entries kept, the others zeroed
                group = sparse_decode(codes.val_N * m, self.W_dec_Fd, full)
            else:  # only the group's entries (a data-dependent shape: the host waits for it)
                r, c = codes.row_N[m], codes.col_N[m]
                group = sparse_decode(codes.val_N[m], self.W_dec_Fd, Pattern(r, c, B, self.cfg.d_sae))
            partial = partial + group
            prefix_mse.append(mse_sum(partial, x_Bd))
            start = end
        x_hat = partial
        aux = self._aux_k_loss(x_Bd, x_hat, pre, dead_F)
        total_mse = torch.stack(prefix_mse).sum()
        losses = {
            "loss": total_mse + self.cfg.aux_coeff * aux,
            "mse": prefix_mse[-1].detach(),
            "aux": aux.detach(),
        }
        for i, v in enumerate(prefix_mse):
            losses[f"mse_prefix{i}"] = v.detach()
        return SAEOutput(x_hat, losses, codes=codes, extra=extra)
