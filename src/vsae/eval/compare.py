"""Comparing SAEs: which latents of one SAE are also latents of another.

* Decoder matching: the cosine similarity of every pair of (unit-normalised) decoder rows, and the
  one-to-one matching that maximises the summed cosine (the Hungarian algorithm, scipy's
  ``linear_sum_assignment``), as in the SAE-universality / seed-stability comparisons (e.g. Paulo &
  Belrose 2025, "Sparse autoencoders trained on the same data learn different features"). Reported:
  mean and distribution of the matched cosines, and the fractions of matched latents above 0.7 / 0.9.
  An SAE against itself gives 1.0; two seeds of one configuration something in (0, 1): the share of
  the dictionary both runs found.
* Activation correlation (with a store): the Pearson correlation, over the store's rows, of each
  latent of A with its matched latent of B, and with its best-correlated latent of B.
* Stability of a sweep across seeds: the mean matched cosine over every pair of SAEs.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsae.shapes import Array, Float, Float64, Int64

THRESHOLDS = (0.7, 0.9)


def decoder_cosines(W_a_Fd: Float[Array, "F d"], W_b_Gd: Float[Array, "G d"]) -> Float64[np.ndarray, "F G"]:
    """Cosine similarity [F, G] of every decoder row of A with every decoder row of B."""
    a = torch.as_tensor(W_a_Fd).detach().double()
    b = torch.as_tensor(W_b_Gd).detach().double()
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a @ b.T).numpy()


@dataclass(frozen=True)
class Matching:
    """A one-to-one matching of latents: A's ``rows_M`` with B's ``cols_M``, their cosines ``cos_M``
    (M = min(F, G) pairs, sorted by A's latent)."""

    rows_M: Int64[np.ndarray, " M"]
    cols_M: Int64[np.ndarray, " M"]
    cos_M: Float[np.ndarray, " M"]


def hungarian(sim_FG: Float[np.ndarray, "F G"]) -> Matching:
    """The one-to-one matching maximising the summed similarity (``linear_sum_assignment``)."""
    from scipy.optimize import linear_sum_assignment  # scipy: only when comparing

    rows, cols = linear_sum_assignment(sim_FG, maximize=True)
    return Matching(rows.astype(np.int64), cols.astype(np.int64), sim_FG[rows, cols])


def summarize_matching(cos_M: Float[np.ndarray, " M"], n_a: int, n_b: int, bins: int = 20) -> dict[str, Any]:
    """Mean, median, fractions above 0.7 / 0.9 and a histogram (edges over [-1, 1]) of matched cosines."""
    counts, edges = np.histogram(cos_M, bins=bins, range=(-1.0, 1.0))
    out: dict[str, Any] = {
        "n_a": n_a,
        "n_b": n_b,
        "n_matched": int(cos_M.size),
        "mean": float(cos_M.mean()) if cos_M.size else float("nan"),
        "median": float(np.median(cos_M)) if cos_M.size else float("nan"),
    }
    for t in THRESHOLDS:
        out[f"frac_above_{t}"] = float((cos_M > t).mean()) if cos_M.size else float("nan")
    out["histogram"] = {"edges": edges.round(6).tolist(), "counts": counts.tolist()}
    return out


def _standardize(z_NF: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns centred and scaled to unit norm (so a dot product is a Pearson correlation); the
    mask of columns that vary (dead or constant latents have no correlation)."""
    z = z_NF.double() - z_NF.double().mean(0)
    norm = z.norm(dim=0)
    alive = norm > 1e-12
    return z / norm.clamp_min(1e-12), alive


def activation_correlation(
    z_a_NF: np.ndarray | torch.Tensor, z_b_NG: np.ndarray | torch.Tensor, m: Matching, block: int = 1024
) -> dict[str, Any]:
    """Pearson correlation over rows of each latent of A with its matched latent of B (mean over
    pairs where both vary) and with its best-correlated latent of B (mean over A's varying latents)."""
    za, alive_a = _standardize(torch.as_tensor(z_a_NF))
    zb, alive_b = _standardize(torch.as_tensor(z_b_NG))
    r, c = torch.from_numpy(m.rows_M), torch.from_numpy(m.cols_M)
    both = alive_a[r] & alive_b[c]
    matched = (za[:, r[both]] * zb[:, c[both]]).sum(0)
    best = []
    zb_alive = zb[:, alive_b]
    for a in range(0, za.shape[1], block):
        cols = torch.arange(a, min(a + block, za.shape[1]))
        cols = cols[alive_a[cols]]
        if cols.numel() and zb_alive.shape[1]:
            best.append((za[:, cols].T @ zb_alive).max(dim=1).values)
    best_all = torch.cat(best) if best else torch.zeros(0, dtype=torch.float64)
    return {
        "n_rows": int(za.shape[0]),
        "n_pairs_alive": int(both.sum()),
        "matched_corr_mean": float(matched.mean()) if matched.numel() else float("nan"),
        "best_corr_mean": float(best_all.mean()) if best_all.numel() else float("nan"),
    }


@dataclass(frozen=True)
class PairResult:
    """One comparison A vs B.

    Attributes
    ----------
    a, b: the two SAEs (as given).
    decoder: matched decoder cosines (:func:`summarize_matching`).
    activations: activation correlations on the store (:func:`activation_correlation`), None without one.
    """

    a: str
    b: str
    decoder: dict[str, Any]
    activations: dict[str, Any] | None = None


@dataclass(frozen=True)
class CompareReport:
    """`vsae compare`: every pair of the given SAEs.

    Attributes
    ----------
    saes: the SAEs compared, in order.
    acts: the store the activation correlations were computed on (None: not computed).
    pairs: one result per pair (i < j).
    stability: mean over pairs of the mean matched decoder cosine (a sweep across seeds: how much of
        the dictionary every seed finds; 1.0 = identical dictionaries).
    """

    saes: list[str]
    acts: str | None
    pairs: list[PairResult] = field(default_factory=list)
    stability: float = float("nan")

    def to_json(self) -> dict[str, Any]:
        """compare.json."""
        return {
            "saes": self.saes,
            "acts": self.acts,
            "stability": self.stability,
            "pairs": [
                {"a": p.a, "b": p.b, "decoder": p.decoder, "activations": p.activations} for p in self.pairs
            ],
        }


def compare_saes(
    saes: list[Any],
    names: list[str] | None = None,
    rows_Nd: np.ndarray | torch.Tensor | None = None,
    acts: str | None = None,
) -> tuple[CompareReport, list[Matching]]:
    """Compare every pair of ``saes`` (vsae SAEs); with ``rows_Nd`` also their activation correlations."""
    from vsae.sae import encode_batched

    names = names or [f"sae{i}" for i in range(len(saes))]
    codes = [encode_batched(s, rows_Nd) for s in saes] if rows_Nd is not None else None
    pairs, matchings = [], []
    for i, j in itertools.combinations(range(len(saes)), 2):
        A, B = saes[i], saes[j]
        m = hungarian(decoder_cosines(A.W_dec, B.W_dec))
        acts_res = activation_correlation(codes[i], codes[j], m) if codes is not None else None
        pairs.append(
            PairResult(names[i], names[j], summarize_matching(m.cos_M, A.cfg.d_sae, B.cfg.d_sae), acts_res)
        )
        matchings.append(m)
    stab = float(np.mean([p.decoder["mean"] for p in pairs])) if pairs else float("nan")
    return CompareReport(list(names), acts, pairs, stab), matchings


def plot_matched_cosines(report: CompareReport, matchings: list[Matching], path: str | Path) -> Path:
    """Histogram of the matched decoder cosines of each pair (compare.png)."""
    from vsae.eval.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for p, m in zip(report.pairs, matchings):
        ax.hist(
            m.cos_M, bins=40, range=(-1, 1), histtype="step", label=f"{Path(p.a).name} vs {Path(p.b).name}"
        )
    for t in THRESHOLDS:
        ax.axvline(t, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("matched decoder cosine (Hungarian)")
    ax.set_ylabel("latents")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_compare(
    sae_paths: list[str],
    out: str | os.PathLike,
    acts: str | os.PathLike | None = None,
    max_rows: int | None = 20000,
    seed: int = 0,
    revision: str | None = None,
) -> CompareReport:
    """`vsae compare`: load the SAEs (paths, known names or hub ids), compare every pair, write
    ``compare.json`` and ``compare.png`` into ``out``."""
    from vsae.errors import VsaeError
    from vsae.eval.sampling import spread_sample
    from vsae.eval.write_json import write_json
    from vsae.sae import load

    if len(sae_paths) < 2:
        raise VsaeError("compare needs at least two SAEs")
    saes = [load(p, revision=revision) for p in sae_paths]
    d = {s.cfg.d_in for s in saes}
    if len(d) > 1:
        raise VsaeError(f"the SAEs have different input widths d_in {sorted(d)}; compare SAEs of one hook")
    rows = None
    if acts is not None:
        from vsae.store import ActivationStore

        store = ActivationStore.open(Path(acts))
        if store.d != saes[0].cfg.d_in:
            raise VsaeError(f"store {acts} has d={store.d} but the SAEs take d_in={saes[0].cfg.d_in}")
        rows = store[np.sort(spread_sample(len(store), max_rows, seed))]
    report, matchings = compare_saes(saes, list(sae_paths), rows, None if acts is None else str(acts))
    Path(out).mkdir(parents=True, exist_ok=True)
    write_json(out, "compare", report.to_json())
    plot_matched_cosines(report, matchings, Path(out) / "compare.png")
    return report
