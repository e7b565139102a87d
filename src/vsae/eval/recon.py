"""Reconstruction metrics on a held-out set (docs/METRICS.md): MSE, FVU, L0, dead and dense
latent fractions, and the latent firing-frequency histogram. Streams over batches; float64."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy
from vsae.shapes import Array, Float

DENSE_FREQUENCY = 0.1  # a latent firing on more than 10% of rows is "dense" (METRICS.md)


@dataclass(frozen=True)
class ReconResult:
    """Streaming reconstruction metrics. `fire_count_F` is the number of rows each latent fired on."""

    mse: float
    fvu: float
    l0: float
    n_rows: int
    fire_count_F: np.ndarray

    @property
    def explained_variance(self) -> float:
        return 1.0 - self.fvu

    @property
    def frequency_F(self) -> np.ndarray:
        return self.fire_count_F / max(self.n_rows, 1)

    @property
    def dead_fraction(self) -> float:
        return float((self.fire_count_F == 0).mean())

    @property
    def dense_fraction(self) -> float:
        return float((self.frequency_F > DENSE_FREQUENCY).mean())

    def frequency_histogram(self, bins: int = 30) -> dict[str, Any]:
        """Histogram of log10 firing frequency over latents that fired at least once."""
        f = self.frequency_F[self.fire_count_F > 0]
        lo = np.log10(1.0 / max(self.n_rows, 1))
        counts, edges = np.histogram(np.log10(f), bins=bins, range=(min(lo, -1e-9), 0.0))
        return {
            "log10_edges": edges.tolist(),
            "counts": counts.tolist(),
            "n_dead": int((self.fire_count_F == 0).sum()),
        }

    def summary(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "mse": self.mse,
            "fvu": self.fvu,
            "explained_variance": self.explained_variance,
            "l0": self.l0,
            "n_latents": int(self.fire_count_F.size),
            "dead_fraction": self.dead_fraction,
            "dense_fraction": self.dense_fraction,
            "dense_threshold": DENSE_FREQUENCY,
            "firing_histogram": self.frequency_histogram(),
        }


class ReconAccumulator:
    """Accumulates sum ||x - x_hat||^2, the per-dimension mean/M2 of x (Chan et al. merging,
    so the total variance has no cancellation), L0 and per-latent fire counts."""

    def __init__(self) -> None:
        self.n = 0
        self.sse = 0.0
        self.mse_sum = 0.0
        self.mean_d: np.ndarray | None = None
        self.m2_d: np.ndarray | None = None
        self.nnz = 0
        self.fire: np.ndarray | None = None

    def update(
        self,
        x_Bd: Float[Array, "B d"],
        x_hat_Bd: Float[Array, "B d"],
        z_BF: Float[Array, "B F"] | sp.spmatrix | sp.sparray,
    ) -> None:
        """Add a batch: inputs, their reconstructions and the latents (dense or CSR)."""
        x = to_numpy(x_Bd, np.float64)
        xh = to_numpy(x_hat_Bd, np.float64)
        if x.shape != xh.shape:
            raise VsaeError(f"input has shape {x.shape} but the reconstruction {xh.shape}")
        b, d = x.shape
        if b == 0:
            return
        err = ((x - xh) ** 2).sum(axis=1)
        self.sse += float(err.sum())
        self.mse_sum += float((err / d).sum())
        bmean = x.mean(axis=0)
        bm2 = ((x - bmean) ** 2).sum(axis=0)
        if self.mean_d is None:
            self.mean_d, self.m2_d = bmean, bm2
        else:
            tot = self.n + b
            delta = bmean - self.mean_d
            self.mean_d = self.mean_d + delta * (b / tot)
            self.m2_d = self.m2_d + bm2 + delta**2 * (self.n * b / tot)
        self.n += b
        if isinstance(z_BF, sp.spmatrix | sp.sparray):  # = sp.issparse
            zc = z_BF.tocsr()
            zc.eliminate_zeros()
            fired = np.bincount(zc.indices, minlength=zc.shape[1])
            self.nnz += int(zc.nnz)
        else:
            nz = to_numpy(z_BF) != 0
            fired = nz.sum(axis=0)
            self.nnz += int(nz.sum())
        self.fire = fired.astype(np.int64) if self.fire is None else self.fire + fired

    def result(self) -> ReconResult:
        if self.n == 0:
            raise VsaeError("no rows to evaluate: the held-out store is empty")
        assert self.m2_d is not None and self.fire is not None  # set by the first update, as n > 0
        total = float(self.m2_d.sum())
        return ReconResult(
            mse=self.mse_sum / self.n,
            fvu=self.sse / total if total > 0 else float("nan"),
            l0=self.nnz / self.n,
            n_rows=self.n,
            fire_count_F=self.fire,
        )


def reconstruction_metrics(
    x_Nd: Float[Array, "N d"],
    x_hat_Nd: Float[Array, "N d"],
    z_NF: Float[Array, "N F"] | sp.spmatrix | sp.sparray,
) -> ReconResult:
    """All reconstruction metrics of one in-memory batch."""
    acc = ReconAccumulator()
    acc.update(x_Nd, x_hat_Nd, z_NF)
    return acc.result()
