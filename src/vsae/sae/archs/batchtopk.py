"""BatchTopK SAE (Bussmann, Leask & Nanda 2024; used by Pach et al.).

Training keeps the k*B largest ReLU'd pre-activations over the whole batch (so rows vary in
L0 while the mean is k). For inference a single learned threshold replaces the batch: z =
ReLU(pre) * (pre > theta), with theta a running (EMA) estimate of the smallest activation kept
in training, so one image's latents never depend on its batch; outside training (``.eval()``,
e.g. a loaded SAE) ``forward`` selects with that threshold too, and equals decode(encode(x)).

Under torch.distributed the selection is over the *global* batch: each rank contributes its
top candidates and all agree on the global k*B-th value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from vsae.errors import VsaeError
from vsae.sae.arch_registry import register_arch
from vsae.sae.archs.topk import TopKConfig, row_topk_entries
from vsae.sae.base import SAE, SAEOutput, gather_entries
from vsae.sae.sae_config import SAEConfig
from vsae.sae.saelens import unit_rows
from vsae.sae.step import fixed_shapes_on
from vsae.shapes import Bool, Float, Int, Tensor


@dataclass(frozen=True, kw_only=True)
class BatchTopKConfig(TopKConfig):
    """A BatchTopK SAE's settings: those of :class:`vsae.sae.archs.topk.TopKConfig` and

    Attributes
    ----------
    threshold_momentum: EMA momentum of the inference threshold estimate, in [0, 1).
    """

    arch: str = "batchtopk"
    threshold_momentum: float = 0.99

    def check(self) -> None:
        super().check()
        m = self.threshold_momentum  # EMA weight of the old threshold: >= 1 never learns or diverges
        if not (math.isfinite(m) and 0 <= m < 1):
            raise VsaeError(f"--threshold-momentum must be a number in [0, 1), got {m}")


_SAMPLE = 1 << 16
_CAP = 8  # sync-free training: a row may hold at most _CAP * k of the batch's k * B entries


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _lower_bound(flat_M: torch.Tensor, K: int) -> float | None:
    """A value likely below the K-th largest, from a strided sample (None: sample too small)."""
    M = flat_M.numel()
    if M <= 8 * _SAMPLE or K >= M // 4:
        return None
    sample = flat_M[:: M // _SAMPLE]
    q = 1.0 - K / M
    return float(torch.quantile(sample, max(0.0, q - 0.01 - 3.0 / len(sample) ** 0.5)))


def kth_largest(flat_M: Float[Tensor, " M"], K: int) -> Float[Tensor, ""]:
    """The K-th largest value of a 1-D tensor, fast for K << M (exact).

    A strided sample gives a lower bound that keeps >= K candidates; the exact top-K then runs
    on the candidates only (falls back to a full top-K when the bound misses).
    """
    if flat_M.numel() <= K:
        return flat_M.min()
    lo = _lower_bound(flat_M, K)
    if lo is not None:
        cand = flat_M[flat_M >= lo]
        if cand.numel() >= K:
            return cand.topk(K, sorted=False).values.min()
    return flat_M.topk(K, sorted=False).values.min()


def _indices_at_least(flat_M: torch.Tensor, lo: float) -> torch.Tensor:
    """Sorted indices of the entries >= lo (numpy's compaction on CPU: about 5x torch.nonzero)."""
    if (
        flat_M.device.type == "cpu"
        and flat_M.dtype in (torch.float32, torch.float64)
        and not flat_M.requires_grad
    ):
        return torch.from_numpy(np.flatnonzero(flat_M.numpy() >= lo)).to(torch.long)
    return torch.nonzero(flat_M >= lo).squeeze(1)


def batch_topk_flat(flat_M: Float[Tensor, " M"], K: int) -> Int[Tensor, " N"]:
    """Sorted flat indices of the K largest positive entries (ties at the K-th value kept)."""
    tiny = torch.finfo(flat_M.dtype).tiny
    lo = _lower_bound(flat_M, K)
    idx = _indices_at_least(flat_M, max(lo, tiny)) if lo is not None else None
    if idx is None or idx.numel() < K:
        idx = _indices_at_least(flat_M, tiny)
    if idx.numel() <= K:
        return idx
    vals = flat_M.index_select(0, idx)
    t = vals.topk(K, sorted=False).values.min()
    return idx[vals >= t]


def batch_topk_fixed(
    pre_BF: Float[Tensor, "B F"], K: int, m: int
) -> tuple[Int[Tensor, " N"], Int[Tensor, " N"], Bool[Tensor, ""]]:
    """(row_N, col_N, capped): exactly K entries, row-major, the K largest of ``pre_BF`` among
    each row's ``m`` largest; fixed shapes, so no host synchronisation.

    Equals the batch top-K unless a row holds more than ``m`` of it; ``capped`` (a bool device
    tensor) says when a row's m candidates all made the cut, i.e. it may have been capped.
    Entries that are not positive stay in the pattern and get value 0 after the ReLU.
    """
    B, F = pre_BF.shape
    m = min(m, F)
    K = min(K, B * m)
    v_Bm, c_Bm = pre_BF.topk(m, dim=1, sorted=False)
    top_K, j_K = v_Bm.reshape(-1).topk(K, sorted=False)
    key_K = (j_K // m) * F + c_Bm.reshape(-1).index_select(0, j_K)
    key_K, _ = key_K.sort()
    capped = (
        (v_Bm.min(dim=1).values >= top_K.min()).any() if m < F else pre_BF.new_zeros((), dtype=torch.bool)
    )
    return key_K // F, key_K % F, capped


def global_kth_largest(flat_M: Float[Tensor, " M"], K: int) -> Float[Tensor, ""]:
    """``kth_largest`` over the concatenation of ``flat_M`` across all distributed ranks."""
    world = _world()
    if world == 1:
        return kth_largest(flat_M, K)
    local = flat_M.topk(min(K, flat_M.numel()), sorted=False).values
    dev = flat_M.device  # NCCL needs device tensors; gloo takes CPU ones
    sizes = [torch.zeros((), dtype=torch.long, device=dev) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor(local.numel(), device=dev))
    n_max = int(max(int(s) for s in sizes))
    padded = torch.full((n_max,), float("-inf"), dtype=local.dtype, device=dev)
    padded[: local.numel()] = local
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return kth_largest(torch.cat(gathered), K)


@register_arch("batchtopk", uses_k=True, saelens="jumprelu", saelens_training="batchtopk")
class BatchTopKSAE(SAE):
    """k*B latents per batch in training; one learned threshold at inference (exported to SAELens
    as JumpReLU with that threshold on every latent)."""

    sparse_codes = True
    config_class = BatchTopKConfig
    cfg: BatchTopKConfig
    threshold: torch.Tensor

    def __init__(self, cfg: BatchTopKConfig):
        super().__init__(cfg)
        # < 0 until the first training batch sets it.
        self.register_buffer("threshold", torch.tensor(-1.0))

    @torch.no_grad()
    def fold_scale_(self, scale: float) -> None:
        super().fold_scale_(scale)
        if float(self.threshold) >= 0:
            self.threshold.div_(scale)

    def saelens_tensors(self) -> dict[str, torch.Tensor]:
        t = float(self.threshold)
        if t < 0:
            raise VsaeError(
                "this BatchTopK SAE has no inference threshold yet (never trained); train it before export"
            )
        return {"threshold": torch.full((self.cfg.d_sae,), t)}

    @torch.no_grad()
    def load_saelens_threshold(self, threshold: torch.Tensor | None) -> None:
        if threshold is not None:
            self.threshold.copy_(threshold.reshape(-1)[0])

    @classmethod
    def saelens_training_details(cls, cfg: SAEConfig) -> dict[str, Any]:
        """SAELens's ``training_architecture_details`` (as SAELens writes them for BatchTopK)."""
        assert isinstance(cfg, BatchTopKConfig)
        return {"k": cfg.k, "aux_loss_coefficient": cfg.aux_coeff, "rescale_acts_by_decoder_norm": True}

    @classmethod
    def config_from_saelens(cls, details: dict[str, Any], d_in: int, d_sae: int) -> dict[str, Any]:
        """SAEConfig fields from SAELens's training details (KeyError/ValueError: not usable)."""
        return {"k": min(max(1, round(float(details.get("k", 0)))), d_sae)}

    @classmethod
    def restores_from_saelens(cls, W_dec_Fd: torch.Tensor, threshold: torch.Tensor | None) -> bool:
        """SAELens's JumpReLU form is exactly this SAE's inference rule: one threshold for every
        latent and unit-norm decoder rows."""
        return threshold is not None and bool((threshold == threshold[0]).all()) and unit_rows(W_dec_Fd)

    def encode(self, x_Bd: Float[Tensor, "B d"]) -> Float[Tensor, "B F"]:
        pre = self.pre_acts(x_Bd)
        if float(self.threshold) < 0:  # never trained: fall back to per-row top-k
            val, col = pre.topk(self.cfg.k, dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter_(-1, col, val.relu())
        return pre * (pre > self.threshold.clamp_min(0))

    def select(self, pre_BF: Float[Tensor, "B F"]) -> tuple[Int[Tensor, " N"], Int[Tensor, " N"]]:
        """(row_N, col_N) of the k*B largest positive pre-activations of the (global) batch in
        training; outside training (``.eval()``) the entries ``encode`` keeps, so that a row's
        latents never depend on its batch."""
        if not self.training:
            return self.inference_select(pre_BF)
        B, F = pre_BF.shape
        flat = pre_BF.reshape(-1)
        if _world() == 1:
            flat_idx = batch_topk_flat(flat, self.cfg.k * B)
        else:
            t = global_kth_largest(flat, self.cfg.k * B * _world())
            flat_idx = torch.nonzero(flat >= t.clamp_min(torch.finfo(flat.dtype).tiny)).squeeze(1)
        return flat_idx // F, flat_idx % F

    def inference_select(self, pre_BF: Float[Tensor, "B F"]) -> tuple[Int[Tensor, " N"], Int[Tensor, " N"]]:
        """(row_N, col_N), row-major, of the entries ``encode`` keeps: pre > threshold (per-row
        top-k of the positive entries while no threshold has been learned)."""
        if float(self.threshold) < 0:
            row, col = row_topk_entries(pre_BF, self.cfg.k)
            keep = gather_entries(pre_BF, row, col) > 0
            return row[keep], col[keep]
        row, col = torch.nonzero(pre_BF > self.threshold.clamp_min(0)).unbind(1)
        return row, col

    @torch.no_grad()
    def update_threshold(self, val_N: Float[Tensor, " N"]) -> None:
        """EMA of the smallest positive activation kept in this (global) batch."""
        if fixed_shapes_on() and _world() == 1:
            self._update_threshold_fixed(val_N)
            return
        pos = val_N[val_N > 0]
        m = pos.min() if pos.numel() else val_N.new_tensor(float("inf"))
        if _world() > 1:
            dist.all_reduce(m, op=dist.ReduceOp.MIN)
        if not torch.isfinite(m):
            return
        if float(self.threshold) < 0:
            self.threshold.copy_(m)
        else:
            mom = self.cfg.threshold_momentum
            self.threshold.mul_(mom).add_((1 - mom) * m)

    @torch.no_grad()
    def _update_threshold_fixed(self, val_N: torch.Tensor) -> None:
        """``update_threshold`` as device-side selects (no host sync)."""
        if val_N.numel() == 0:
            return
        # Python scalars as kernel arguments: a device tensor made from a host value would copy (sync).
        m = torch.where(val_N > 0, val_N, float("inf")).min()
        mom = self.cfg.threshold_momentum
        ema = torch.where(self.threshold < 0, m, self.threshold * mom + (1 - mom) * m)
        self.threshold.copy_(torch.where(torch.isfinite(m), ema, self.threshold))

    def select_for_step(
        self, pre_BF: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """``select``, or in a sync-free training step (``fixed_shapes``, one process) the fixed-shape
        selection ``batch_topk_fixed``, whose ``extra["capped"]`` says when it may differ."""
        extra: dict[str, torch.Tensor] = {}
        if self.training and fixed_shapes_on() and _world() == 1:
            B = pre_BF.shape[0]
            row, col, extra["capped"] = batch_topk_fixed(pre_BF, self.cfg.k * B, _CAP * self.cfg.k)
            return row, col, extra
        row, col = self.select(pre_BF)
        return row, col, extra

    def forward(
        self,
        x_Bd: Float[Tensor, "B d"],
        dead_F: Bool[Tensor, " F"] | None = None,
        sparsity_scale: float = 1.0,
    ) -> SAEOutput:
        pre = self._pre_acts_nograd(x_Bd)
        row, col, extra = self.select_for_step(pre)
        codes, x_hat = self._sparse_forward(x_Bd, pre, row, col)
        if self.training:
            self.update_threshold(codes.val_N.detach())
        return SAEOutput(x_hat, self._topk_losses(x_Bd, x_hat, pre, dead_F), codes=codes, extra=extra)
