"""`vsae compare` / vsae.eval.compare (issue 25, point 5): the Hungarian matching against brute
force on small cases, self-comparison = 1.0, two seeds in (0, 1), activation correlations against
numpy's corrcoef, and the command's JSON and plot."""

import itertools
import json

import numpy as np
import pytest
import torch

import vsae
from vsae.cli import main
from vsae.eval.compare import activation_correlation, compare_saes, decoder_cosines, hungarian
from vsae.sae import SAEConfig, build
from vsae.store import StoreWriter


def _brute_force(sim):
    F, G = sim.shape
    if F <= G:
        return max(sum(sim[i, p[i]] for i in range(F)) for p in itertools.permutations(range(G), F))
    return max(sum(sim[p[j], j] for j in range(G)) for p in itertools.permutations(range(F), G))


@pytest.mark.parametrize("shape", [(5, 5), (4, 6), (6, 4), (1, 3)])
def test_hungarian_is_the_best_one_to_one_matching(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        sim = rng.uniform(-1, 1, size=shape)
        m = hungarian(sim)
        assert len(set(m.rows_M.tolist())) == len(m.rows_M) == min(shape)  # one-to-one
        assert len(set(m.cols_M.tolist())) == len(m.cols_M)
        assert np.isclose(m.cos_M.sum(), _brute_force(sim))
        np.testing.assert_array_equal(m.cos_M, sim[m.rows_M, m.cols_M])


def test_decoder_cosines_are_cosines():
    a, b = torch.randn(3, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    c = decoder_cosines(a * 7, b)  # scale-free
    want = np.array([[float(x @ y / x.norm() / y.norm()) for y in b] for x in a])
    np.testing.assert_allclose(c, want, atol=1e-12)


def test_self_gives_one_and_a_permuted_copy_too():
    sae = build(SAEConfig(arch="topk", d_in=8, d_sae=32, k=4), seed=0)
    other = build(SAEConfig(arch="topk", d_in=8, d_sae=32, k=4), seed=0)
    perm = torch.randperm(32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for p in ("W_enc_Fd", "W_dec_Fd", "b_enc_F"):
            getattr(other, p).copy_(getattr(sae, p)[perm])
    rep, (m,) = compare_saes([sae, other], ["a", "b"])
    assert rep.pairs[0].decoder["mean"] == pytest.approx(1.0, abs=1e-12)
    assert rep.pairs[0].decoder["frac_above_0.9"] == 1.0
    np.testing.assert_array_equal(perm[m.cols_M].numpy(), m.rows_M)  # recovers the permutation


def test_activation_correlation_matches_numpy():
    rng = np.random.default_rng(0)
    za = np.maximum(rng.normal(size=(200, 6)), 0)
    zb = np.maximum(za[:, [2, 0, 1, 5, 4, 3]] + 0.5 * rng.normal(size=(200, 6)), 0)
    zb[:, 4] = 0  # a dead latent: no correlation, left out
    m = hungarian(decoder_cosines(np.eye(6), np.eye(6)[[2, 0, 1, 5, 4, 3]]))
    res = activation_correlation(za, zb, m)
    with np.errstate(invalid="ignore", divide="ignore"):  # the dead column's correlation is NaN
        corr = np.corrcoef(za.T, zb.T)[:6, 6:]
    pairs = [(r, c) for r, c in zip(m.rows_M, m.cols_M) if c != 4]
    assert res["n_pairs_alive"] == 5
    assert res["matched_corr_mean"] == pytest.approx(np.mean([corr[r, c] for r, c in pairs]), abs=1e-9)
    best = np.delete(corr, 4, axis=1).max(axis=1)
    assert res["best_corr_mean"] == pytest.approx(best.mean(), abs=1e-9)


def test_cli_compare_self_seeds_and_sweep(tmp_path, capsys):
    gen = torch.Generator().manual_seed(0)
    atoms = torch.randn(16, 8, generator=gen)
    codes = torch.rand(4096, 16, generator=gen) * (torch.rand(4096, 16, generator=gen) < 0.15)
    rows = codes @ atoms + 0.01 * torch.randn(4096, 8, generator=gen)
    w = StoreWriter.create_or_resume(tmp_path / "acts", d=8, dtype="float32", provenance={"hook": "resid.1"})
    w.add(rows, np.arange(4096, dtype=np.int64), np.zeros(4096, dtype=np.int64))
    w.mark_images_done(4096)
    w.close()
    runs = []
    for seed in (0, 1):
        tcfg = vsae.TrainConfig(steps=150, batch_size=256, seed=seed, log_every=50, val_rows=256)
        (d,) = vsae.train(
            tmp_path / "acts",
            SAEConfig(arch="topk", d_in=8, d_sae=16, k=3),
            tcfg,
            tmp_path / f"s{seed}",
            progress=False,
        )
        runs.append(str(d))
    main(["compare", runs[0], runs[0], "--acts", str(tmp_path / "acts"), "--out", str(tmp_path / "self")])
    rep = json.loads((tmp_path / "self" / "compare.json").read_text())
    (pair,) = rep["pairs"]
    assert pair["decoder"]["mean"] == pytest.approx(1.0, abs=1e-9) and rep["stability"] == pytest.approx(
        1.0, abs=1e-9
    )
    assert pair["activations"]["matched_corr_mean"] == pytest.approx(1.0, abs=1e-9)
    assert (tmp_path / "self" / "compare.png").stat().st_size > 1000
    main(["compare", *runs, runs[0], "--out", str(tmp_path / "seeds")])
    rep = json.loads((tmp_path / "seeds" / "compare.json").read_text())
    seeds = rep["pairs"][0]["decoder"]
    assert 0 < seeds["mean"] < 1 and sum(seeds["histogram"]["counts"]) == 16
    assert len(rep["pairs"]) == 3 and 0 < rep["stability"] < 1
    assert "stability" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        main(["compare", runs[0], "--out", str(tmp_path / "x")])
    assert e.value.code == 2
