"""Linear probes on SAE latents vs raw activations — Olson et al. (2025): multinomial logistic
regression trained on the in-distribution train split; accuracy on the in-distribution test
split and on each shifted split."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from vsae.errors import VsaeError
from vsae.eval._arrays import to_numpy
from vsae.eval.eval_config import ProbeConfig as ProbeConfig  # torch-free: `vsae eval probe`'s options


def _xy(x: Any, y: Any, name: str) -> tuple[Any, np.ndarray]:  # x: dense or CSR
    x = to_numpy(x, np.float64) if not hasattr(x, "tocsr") else x
    y = to_numpy(y).ravel()
    if x.shape[0] != y.shape[0]:
        raise VsaeError(
            f"split {name!r} has {x.shape[0]} feature rows but {y.shape[0]} labels; give one label per image"
        )
    return x, y


def standardization(cfg: ProbeConfig) -> dict[str, str]:
    """What `probe_accuracy` does to the features before the fit, per kind (for probe.json):
    dense raw activations are centred and scaled to unit variance, sparse SAE latents only scaled
    (centring would make them dense); the statistics come from the train split alone."""
    if not cfg.standardize:
        return {"raw": "none", "sae": "none"}
    return {
        "raw": "centred and scaled to unit variance (train-split mean and std)",
        "sae": "scaled to unit variance, not centred (train-split std; latents stay sparse)",
    }


def probe_accuracy(
    train: tuple[Any, Any], evals: Mapping[str, tuple[Any, Any]], cfg: ProbeConfig = ProbeConfig()
) -> dict[str, float]:
    """Fit on `train = (features [N, F], labels [N])`; accuracy on every `(features, labels)` in `evals`.
    With `cfg.standardize` a StandardScaler fit on the train split comes first: dense features are
    centred and scaled, sparse (CSR) ones only scaled (`standardization`)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _xy(*train, name="train")
    if np.unique(y).size < 2:
        raise VsaeError("the probe's train split has a single class; give labels of at least two classes")
    steps = [StandardScaler(with_mean=not hasattr(x, "tocsr"))] if cfg.standardize else []
    clf = make_pipeline(*steps, LogisticRegression(C=cfg.c, max_iter=cfg.max_iter, random_state=cfg.seed))
    clf.fit(x, y)
    out = {"train": float((clf.predict(x) == y).mean())}
    for name, (xe, ye) in evals.items():
        xe, ye = _xy(xe, ye, name)
        if xe.shape[1] != x.shape[1]:
            raise VsaeError(f"split {name!r} has {xe.shape[1]} features but train has {x.shape[1]}")
        out[name] = float((clf.predict(xe) == ye).mean())
    return out


def compare_probes(
    splits_raw: Mapping[str, tuple[Any, Any]],
    splits_sae: Mapping[str, tuple[Any, Any]],
    train_split: str = "train",
    cfg: ProbeConfig = ProbeConfig(),
) -> dict[str, dict[str, float]]:
    """Probe accuracies on raw activations and on SAE latents, the same splits for both."""
    out = {}
    for kind, splits in (("raw", splits_raw), ("sae", splits_sae)):
        if train_split not in splits:
            raise VsaeError(
                f"no {train_split!r} split among {sorted(splits)}; name the in-distribution train split"
            )
        evals = {k: v for k, v in splits.items() if k != train_split}
        out[kind] = probe_accuracy(splits[train_split], evals, cfg)
    return out


def fit_probe(train: tuple[Any, Any], cfg: ProbeConfig = ProbeConfig()) -> Any:
    """The fitted probe (an sklearn pipeline) on `train = (features [N, F], labels [N])`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _xy(*train, name="train")
    if np.unique(y).size < 2:
        raise VsaeError("the probe's train split has a single class; give labels of at least two classes")
    steps = [StandardScaler(with_mean=not hasattr(x, "tocsr"))] if cfg.standardize else []
    clf = LogisticRegression(C=cfg.c, max_iter=cfg.max_iter, random_state=cfg.seed)
    return make_pipeline(*steps, clf).fit(x, y)


def probe_correct(
    train: tuple[Any, Any], evals: Mapping[str, tuple[Any, Any]], cfg: ProbeConfig = ProbeConfig()
) -> dict[str, np.ndarray]:
    """Per split of `evals`, whether the probe fit on `train` labels each row right ([N] bool):
    the per-image outcomes that bootstrap intervals resample (`vsae.eval.verdict`)."""
    clf = fit_probe(train, cfg)
    width = _xy(*train, name="train")[0].shape[1]
    out = {}
    for name, (xe, ye) in evals.items():
        xe, ye = _xy(xe, ye, name)
        if xe.shape[1] != width:
            raise VsaeError(f"split {name!r} has {xe.shape[1]} features but train has {width}")
        out[name] = np.asarray(clf.predict(xe) == ye)
    return out


def select_c(
    train: tuple[Any, Any], val: tuple[Any, Any], cs: Sequence[float], cfg: ProbeConfig = ProbeConfig()
) -> tuple[float, dict[float, float]]:
    """The C of `cs` with the best accuracy on the validation split (ties: the smaller C, the
    stronger regularisation), and the validation accuracy of each: chosen per feature set, so no
    feature set is compared at a C that suits only the other."""
    if not cs:
        raise VsaeError("give at least one C to choose from")
    accs = {
        float(c): float(probe_correct(train, {"val": val}, replace(cfg, c=float(c)))["val"].mean())
        for c in cs
    }
    best = max(sorted(accs), key=lambda c: accs[c])  # max keeps the first (smallest) of equal accuracies
    return best, accs
