"""The raw-stream precondition of the shared-latents test (issue 23; docs/shared.md).

Before SAE latents are judged shared across image and text, the raw residual stream itself must
share the attribute: a linear probe (multinomial logistic regression) trained on image-token rows,
each labelled with its image's value of the attribute, is applied to the text rows that *predict*
a word naming a value of it (the next word names the value: in a causal LM the row before a word
predicts it) and must read that value above chance. Accuracy with a percentile bootstrap interval
over those text rows (`vsae.eval.verdict.stratified_bootstrap`); chance is the larger of 1/V
(V values seen in training) and the majority value's share of the tested rows. The precondition
holds for the attribute when the interval's lower bound is above chance, and for a layer (and
text kind) when it holds for some attribute; where it does not, the layer's shared-latents verdict
is "not testable here" (the raw stream does not share the attribute), not "does not hold".
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vsae.eval.eval_config import ProbeConfig
from vsae.eval.probe import fit_probe
from vsae.eval.verdict import stratified_bootstrap

MIN_ROWS = 20  # tested text rows an attribute needs
MAX_ITER = 100  # L-BFGS iterations of the probe


def transfer_accuracy(
    clf: Any,
    n_train_values: int,
    x_txt_md: np.ndarray,
    y_txt_m: np.ndarray,
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> dict[str, Any]:
    """A fitted probe's accuracy on text rows, its interval and chance (module docstring)."""
    y_txt = np.asarray(y_txt_m).astype(str)
    correct = clf.predict(np.asarray(x_txt_md, np.float64)) == y_txt
    iv = stratified_bootstrap(
        {"rows": correct.astype(np.float64)}, lambda m: m["rows"][:, 0], n_boot, level, seed
    )
    _, counts = np.unique(y_txt, return_counts=True)
    chance = max(1.0 / n_train_values, float(counts.max() / counts.sum()))
    return {
        "accuracy": iv.estimate,
        "interval": [iv.lo, iv.hi],
        "chance": chance,
        "n_rows": int(y_txt.size),
        "holds": bool(iv.lo > chance),
    }


def _fit(x_img_nd: np.ndarray, y_img_n: np.ndarray, c: float, seed: int) -> Any:
    """The probe, stopped at `MAX_ITER` L-BFGS iterations (a cost bound; its warning is silenced)."""
    from sklearn.exceptions import ConvergenceWarning

    cfg = ProbeConfig(c=c, standardize=False, max_iter=MAX_ITER, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_probe((np.asarray(x_img_nd, np.float64), np.asarray(y_img_n).astype(str)), cfg)


def probe_transfer(
    x_img_nd: np.ndarray,
    y_img_n: np.ndarray,
    x_txt_md: np.ndarray,
    y_txt_m: np.ndarray,
    c: float = 0.1,
    seed: int = 0,
    n_boot: int = 2000,
    level: float = 0.95,
) -> dict[str, Any]:
    """Probe fit on image rows (no standardisation), accuracy on text rows with its interval against chance."""
    clf = _fit(x_img_nd, y_img_n, c, seed)
    n_values = np.unique(np.asarray(y_img_n).astype(str)).size
    return transfer_accuracy(clf, n_values, x_txt_md, y_txt_m, seed, n_boot, level)


def raw_precondition(
    x_img_nd: np.ndarray,
    image_of_img_n: np.ndarray,
    text: Mapping[str, tuple[np.ndarray, Sequence[str]]],
    table: Mapping[str, np.ndarray],
    lexicon: Mapping[str, tuple[str, str]],
    c: float = 0.1,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Per text kind of `text` (kind -> (text rows [m, d], each row's next word)), per attribute
    named by the next words, `transfer_accuracy` of one probe per attribute fit on the image rows;
    ``holds`` when some attribute's holds. Attributes with fewer than `MIN_ROWS` predicting rows
    in a kind, or one value on the images, are skipped."""
    out: dict[str, dict[str, Any]] = {
        k: {
            "what": "probe trained on image-token rows (label: the image's value), tested on text rows whose "
            "next word names a value; holds when the 95% interval's lower bound is above chance",
            "per_attribute": {},
        }
        for k in text
    }
    for attr in table:
        col = np.asarray(table[attr], object)[np.asarray(image_of_img_n)]
        known = np.array([v is not None for v in col], bool)
        n_values = np.unique(col[known].astype(str)).size
        tested = {
            k: [(r, lexicon[w][1]) for r, w in enumerate(nxt) if w in lexicon and lexicon[w][0] == attr]
            for k, (_, nxt) in text.items()
        }
        tested = {k: rows for k, rows in tested.items() if len(rows) >= MIN_ROWS}
        if n_values < 2 or not tested:
            continue
        clf = _fit(x_img_nd[known], col[known], c, seed)
        for k, rows in tested.items():
            idx = np.array([r for r, _ in rows])
            out[k]["per_attribute"][attr] = transfer_accuracy(
                clf, n_values, text[k][0][idx], np.array([v for _, v in rows]), seed
            )
    for v in out.values():
        v["holds"] = any(p["holds"] for p in v["per_attribute"].values())
    return out
