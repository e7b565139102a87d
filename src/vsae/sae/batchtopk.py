"""BatchTopK SAE (Bussmann, Leask & Nanda 2024; used by Pach et al.).

Training keeps the k*B largest ReLU'd pre-activations over the whole batch (so rows vary in
L0 while the mean is k). For inference a single learned threshold replaces the batch: z =
ReLU(pre) * (pre > theta), with theta a running (EMA) estimate of the smallest activation kept
in training, so one image's latents never depend on its batch.

Under torch.distributed the selection is over the *global* batch: each rank contributes its
top candidates and all agree on the global k*B-th value.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from vsae.sae.base import SAE, SAEOutput
from vsae.sae.config import SAEConfig

_SAMPLE = 1 << 16


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


def kth_largest(flat_M: torch.Tensor, K: int) -> torch.Tensor:
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


def batch_topk_flat(flat_M: torch.Tensor, K: int) -> torch.Tensor:
    """Sorted flat indices of the K largest positive entries (ties at the K-th value kept)."""
    tiny = torch.finfo(flat_M.dtype).tiny
    lo = _lower_bound(flat_M, K)
    idx = torch.nonzero(flat_M >= max(lo, tiny)).squeeze(1) if lo is not None else None
    if idx is None or idx.numel() < K:
        idx = torch.nonzero(flat_M >= tiny).squeeze(1)
    if idx.numel() <= K:
        return idx
    vals = flat_M.index_select(0, idx)
    t = vals.topk(K, sorted=False).values.min()
    return idx[vals >= t]


def global_kth_largest(flat_M: torch.Tensor, K: int) -> torch.Tensor:
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


class BatchTopKSAE(SAE):
    sparse_codes = True

    def __init__(self, cfg: SAEConfig):
        super().__init__(cfg)
        # < 0 until the first training batch sets it.
        self.register_buffer("threshold", torch.tensor(-1.0))

    def encode(self, x_Bd: torch.Tensor) -> torch.Tensor:
        pre = self.pre_acts(x_Bd)
        if float(self.threshold) < 0:  # never trained: fall back to per-row top-k
            val, col = pre.topk(self.cfg.k, dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter_(-1, col, val.relu())
        return pre * (pre > self.threshold.clamp_min(0))

    def select(self, pre_BF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row_N, col_N) of the k*B largest positive pre-activations of the (global) batch."""
        B, F = pre_BF.shape
        flat = pre_BF.reshape(-1)
        if _world() == 1:
            flat_idx = batch_topk_flat(flat, self.cfg.k * B)
        else:
            t = global_kth_largest(flat, self.cfg.k * B * _world())
            flat_idx = torch.nonzero(flat >= t.clamp_min(torch.finfo(flat.dtype).tiny)).squeeze(1)
        return flat_idx // F, flat_idx % F

    @torch.no_grad()
    def update_threshold(self, val_N: torch.Tensor) -> None:
        """EMA of the smallest positive activation kept in this (global) batch."""
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

    def forward(self, x_Bd, dead_F=None, sparsity_scale: float = 1.0) -> SAEOutput:
        pre = self._pre_acts_nograd(x_Bd)
        row, col = self.select(pre)
        codes, x_hat = self._sparse_forward(x_Bd, pre, row, col)
        if self.training:
            self.update_threshold(codes.val_N.detach())
        return SAEOutput(x_hat, self._topk_losses(x_Bd, x_hat, pre, dead_F), codes=codes)
