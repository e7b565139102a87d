"""Monosemanticity Score: vsae's streaming algebraic MS vs the paper's pairwise loop, same data.

The reference (Pach et al.'s released script, reimplemented plainly) loops over images i and, for
each, over batches of 100 images j > i, vectorised over latents: O(N^2 F). Both are float64 here so
that the comparison checks the algebra, not float32 rounding. The full reference is too slow to
run on all latents on 2 cores, so (1) agreement is checked by running it over ALL image pairs on a
random subset of latents, and (2) its time for all F latents is measured on the first
`--ref-rows` outer iterations (i = 0..r-1, the longest ones) over all F latents and scaled
linearly by the number of (i, j-batch) iterations, which is what its cost is proportional to.

    python bench/ms.py                      # N=5,000, F=4,096 comparison + N=50,000, F=65,536, k=20
    python bench/ms.py --skip-large
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import scipy.sparse as sp
import torch

from vsae.eval._arrays import chunks_of
from vsae.eval.monosemanticity import monosemanticity_score_streaming


def sparse_acts(n: int, f: int, k: int, seed: int) -> sp.csr_matrix:
    """TopK-SAE-like activations: k latent draws per image (a Zipf-like popularity, so some latents
    fire often and some rarely; repeated draws merge, so a row has at most k non-zeros) with
    exponential values."""
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(1.0 / np.arange(1, f + 1) ** 0.7)
    cols = np.minimum(np.searchsorted(cdf / cdf[-1], rng.random((n, k))), f - 1)
    cols = rng.permutation(f)[cols]  # popular latents spread over the index range
    vals = rng.exponential(size=(n, k)).astype(np.float32)
    m = sp.csr_matrix((vals.ravel(), cols.ravel(), np.arange(0, n * k + 1, k)), shape=(n, f))
    m.sum_duplicates()
    return m


def n_iterations(n: int, rows: range, batch_size: int = 100) -> int:
    return sum(len(range(i + 1, n, batch_size)) for i in rows)


def reference_ms(
    acts_NF: torch.Tensor, emb_ND: torch.Tensor, batch_size: int = 100, rows: range | None = None
) -> torch.Tensor:
    """The paper's loop (min-max scaling, pairs i < j, j in batches of 100, vectorised over latents)."""
    lo = acts_NF.min(dim=0, keepdim=True)[0]
    hi = acts_NF.max(dim=0, keepdim=True)[0]
    a = (acts_NF - lo) / (hi - lo)
    n = emb_ND.shape[0]
    num = torch.zeros(a.shape[1], dtype=a.dtype)
    den = torch.zeros(a.shape[1], dtype=a.dtype)
    for i in rows if rows is not None else range(n):
        for j0 in range(i + 1, n, batch_size):
            j1 = min(j0 + batch_size, n)
            cos = torch.nn.functional.cosine_similarity(
                emb_ND[i].unsqueeze(0).expand(j1 - j0, -1), emb_ND[j0:j1], dim=1
            )
            w = a[i].unsqueeze(0) * a[j0:j1]
            num += (w * cos.unsqueeze(1)).sum(dim=0)
            den += w.sum(dim=0)
    return torch.where(den != 0, num / den, torch.nan)


def compare(n: int, f: int, k: int, d: int, ref_latents: int, ref_rows: int, seed: int = 0) -> None:
    acts = sparse_acts(n, f, k, seed)
    emb = np.random.default_rng(seed + 1).normal(size=(n, d)).astype(np.float32)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fast = monosemanticity_score_streaming(chunks_of(acts, 8192), emb).scores_F
        times.append(time.perf_counter() - t0)
    t_fast = min(times)
    emb64 = torch.from_numpy(emb.astype(np.float64))
    # (1) agreement: the full reference (all pairs) on a random subset of scored latents
    alive = np.flatnonzero(~np.isnan(fast))
    sub = np.sort(np.random.default_rng(seed).choice(alive, size=min(ref_latents, alive.size), replace=False))
    t0 = time.perf_counter()
    ref = reference_ms(torch.from_numpy(acts[:, sub].toarray().astype(np.float64)), emb64).numpy()
    t_ref_sub = time.perf_counter() - t0
    err = np.nanmax(np.abs(ref - fast[sub]))
    # (2) timing: the reference on all F latents, first ref_rows outer iterations, scaled
    dense = torch.from_numpy(acts.toarray().astype(np.float64))
    t0 = time.perf_counter()
    reference_ms(dense, emb64, rows=range(ref_rows))
    t_part = time.perf_counter() - t0
    done, total = n_iterations(n, range(ref_rows)), n_iterations(n, range(n))
    t_ref = t_part * total / done
    print(f"[compare] N={n} F={f} k={k} D={d} (sparse, {acts.nnz:,} non-zeros)")
    print(f"  vsae streaming MS, all {f} latents: {t_fast:.3f} s (best of 3; first call {times[0]:.3f} s)")
    print(f"  reference, all pairs, {sub.size} random scored latents: {t_ref_sub:.1f} s")
    print(
        f"  max |MS_ref - MS_vsae| on those latents: {err:.2e}; NaN pattern equal: "
        f"{bool(np.array_equal(np.isnan(ref), np.isnan(fast[sub])))}"
    )
    print(
        f"  reference, all {f} latents, outer rows i<{ref_rows}: {t_part:.1f} s for {done:,} of {total:,} "
        f"(i, j-batch) iterations -> scaled: {t_ref:,.0f} s"
    )
    print(f"  speed-up: {t_ref / t_fast:,.0f}x")
    assert err < 1e-6, err


def large(n: int, f: int, k: int, d: int, seed: int = 0) -> None:
    acts = sparse_acts(n, f, k, seed)
    emb = np.random.default_rng(seed + 1).normal(size=(n, d)).astype(np.float32)
    t0 = time.perf_counter()
    res = monosemanticity_score_streaming(chunks_of(acts, 8192), emb)
    t = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    s = res.scores_F
    print(
        f"[large] N={n} F={f} k={k} D={d} (sparse, {acts.nnz:,} non-zeros): {t:.1f} s, "
        f"peak RSS {rss:,.0f} MiB, scored {int((~np.isnan(s)).sum())}, dead {int(res.dead_F.sum())}, "
        f"mean MS {np.nanmean(s):.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--f", type=int, default=4096)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--ref-latents", type=int, default=16)
    ap.add_argument("--ref-rows", type=int, default=10)
    ap.add_argument("--skip-large", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    compare(args.n, args.f, args.k, args.d, args.ref_latents, args.ref_rows)
    if not args.skip_large:
        large(50_000, 65_536, 20, args.d)


if __name__ == "__main__":
    main()
