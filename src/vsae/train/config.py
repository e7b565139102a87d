"""Training hyper-parameters (shared by every SAE of a sweep trained in one pass)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from vsae.errors import VsaeError


@dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes
    ----------
    steps: optimizer steps (one global batch each).
    batch_size: global batch size B (rows); split evenly across DDP ranks.
    lr: peak Adam learning rate.
    warmup_steps: linear LR warm-up from 0 (None: 5% of steps, at most 1000).
    decay_start: fraction of steps after which the LR decays linearly to 0 (dictionary_learning: 0.8).
    sparsity_warmup_steps: linear warm-up of the L1/L0 coefficient (None: 5% of steps).
    grad_clip: max global gradient norm per SAE (0 = off).
    seed: seeds the SAE initialisation and the data order.
    log_every: steps between log rows (JSONL + progress bar).
    ckpt_every: steps between checkpoints (0 = only at the end).
    dead_window_rows: a latent is dead if it did not fire over this many training rows
        (None: min(10M, steps * batch_size // 10), at least one batch).
    init_rows: rows sampled for the input scale and the decoder-bias initialisation.
    b_dec_init: "geometric_median" | "mean" | "zeros".
    normalize: scale inputs to E||x||^2 = d (folded back into the weights at save).
    val_rows: held-out rows used for validation metrics: a seeded sample spread over the whole
        validation store (all of it when it has fewer rows; 0 = no validation).
    device: torch device string.
    wandb_project: log to Weights & Biases too (only if installed).
    precision: matmul precision of the encoder/decoder products: "fp32", "tf32" (CUDA TF32
        tensor cores) or "bf16" (autocast); weights, optimizer state and losses stay fp32.
    sync_free: training steps without host synchronisation between log intervals (fixed-shape
        BatchTopK selection, see vsae.sae.batchtopk.batch_topk_fixed); None: on for CUDA.
    """

    steps: int
    batch_size: int = 4096
    lr: float = 4e-4
    warmup_steps: int | None = None
    decay_start: float = 0.8
    sparsity_warmup_steps: int | None = None
    grad_clip: float = 1.0
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 1000
    dead_window_rows: int | None = None
    init_rows: int = 8192
    b_dec_init: str = "geometric_median"
    normalize: bool = True
    val_rows: int = 65536
    device: str = "cpu"
    wandb_project: str | None = None
    precision: str = "fp32"
    sync_free: bool | None = None

    def __post_init__(self):
        if self.steps <= 0 or self.batch_size <= 0:
            raise VsaeError(f"--steps ({self.steps}) and --batch-size ({self.batch_size}) must be positive")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise VsaeError(
                f"--lr must be a number in (0, 1] (Adam; SAEs use about 1e-4 to 1e-3), got {self.lr}"
            )
        if not (math.isfinite(self.grad_clip) and self.grad_clip >= 0):
            raise VsaeError(f"--grad-clip must be >= 0 (0 = off), got {self.grad_clip}")
        for flag, v, lo in (
            ("--warmup-steps", self.warmup_steps, 0),
            ("sparsity_warmup_steps", self.sparsity_warmup_steps, 0),
            ("--dead-window", self.dead_window_rows, 1),
            ("--log-every", self.log_every, 1),
            ("--ckpt-every", self.ckpt_every, 0),
            ("--seed", self.seed, 0),
            ("init_rows", self.init_rows, 1),
            ("val_rows", self.val_rows, 0),
        ):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise VsaeError(f"{flag} must be an integer >= {lo}, got {v}")
        if self.precision not in ("fp32", "tf32", "bf16"):
            raise VsaeError(f"--precision {self.precision!r} must be fp32, tf32 or bf16")
        if self.b_dec_init not in ("geometric_median", "mean", "zeros"):
            raise VsaeError(f"b_dec_init {self.b_dec_init!r} must be geometric_median, mean or zeros")
        if not 0 <= self.decay_start <= 1:
            raise VsaeError(f"decay_start must be in [0, 1], got {self.decay_start}")

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else min(1000, self.steps // 20)

    @property
    def sparsity_warmup(self) -> int:
        return self.sparsity_warmup_steps if self.sparsity_warmup_steps is not None else self.steps // 20

    @property
    def dead_window(self) -> int:
        if self.dead_window_rows is not None:
            return self.dead_window_rows
        return max(self.batch_size, min(10_000_000, self.steps * self.batch_size // 10))

    def lr_at(self, step: int) -> float:
        """Linear warm-up, constant, then linear decay to 0 over the last (1 - decay_start)."""
        w = self.warmup
        mult = (step + 1) / w if step < w else 1.0
        d0 = int(self.decay_start * self.steps)
        if step >= d0 and self.steps > d0:
            mult = min(mult, (self.steps - step) / (self.steps - d0))
        return self.lr * mult

    def sparsity_at(self, step: int) -> float:
        w = self.sparsity_warmup
        return min(1.0, (step + 1) / w) if w > 0 else 1.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        return cls(**d)

    def replace(self, **kw) -> TrainConfig:
        return dataclasses.replace(self, **kw)
