import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vsae.errors import VsaeError
from vsae.eval.ood import auroc, fpr_at_tpr, ood_report, ood_scores, roc_curve


def fpr_sweep(s_in, s_ood, tpr=0.95):
    best = 1.0
    for t in np.concatenate([s_in, s_ood, [np.inf]]):
        if (s_ood >= t).mean() >= tpr:
            best = min(best, (s_in >= t).mean())
    return best


@pytest.mark.parametrize("seed", range(5))
def test_auroc_and_fpr_match_sklearn_and_sweep(seed):
    rng = np.random.default_rng(seed)
    n_in, n_ood = rng.integers(1, 60, size=2)
    s_in = np.round(rng.normal(size=n_in), 1)  # rounding makes ties
    s_ood = np.round(rng.normal(loc=0.7, size=n_ood), 1)
    y = np.r_[np.zeros(n_in), np.ones(n_ood)]
    if 0 < y.sum() < y.size:
        assert auroc(s_in, s_ood) == pytest.approx(roc_auc_score(y, np.r_[s_in, s_ood]), abs=1e-12)
    assert fpr_at_tpr(s_in, s_ood) == pytest.approx(fpr_sweep(s_in, s_ood))
    fpr, tpr = roc_curve(s_in, s_ood)
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1 and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(auroc(s_in, s_ood), abs=1e-12)


def test_perfect_and_constant():
    assert auroc([0, 1], [2, 3]) == 1.0 and fpr_at_tpr([0, 1], [2, 3]) == 0.0
    assert auroc([1, 1], [1, 1, 1]) == 0.5 and fpr_at_tpr([1, 1], [1]) == 1.0
    with pytest.raises(VsaeError):
        auroc([], [1.0])


def test_scores_and_report():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4))
    xh = x + 0.1
    z = np.abs(rng.normal(size=(6, 3)))
    s = ood_scores(x, xh, z)
    np.testing.assert_allclose(s["recon_error"], 0.04)
    np.testing.assert_allclose(s["latent_max"], z.max(1))
    rep = ood_report({"a": np.arange(5.0)}, {"a": np.arange(5.0) + 10, "b": np.ones(2)})
    assert rep == {"a": {"auroc": 1.0, "fpr_at_95tpr": 0.0}}
