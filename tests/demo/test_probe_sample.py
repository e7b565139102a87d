"""The demo's shape probe on a class-sorted train store (as extraction writes the world's class
folders): it must train on rows of every class, not on the first rows."""

import numpy as np
import torch

from vsae.demo.analyse import PROBE_TRAIN_ROWS, probe, probe_sample, probe_train_rows


def _split(n, seed, sort):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 6, n)
    if sort:
        y = np.sort(y)
    centers = np.random.default_rng(99).normal(scale=2.0, size=(6, 10))
    x = centers[y] + rng.normal(scale=0.5, size=(n, 10))
    return torch.tensor(x, dtype=torch.float32), y


def test_probe_trains_on_every_class_of_a_sorted_store():
    parts = {"train": _split(2 * PROBE_TRAIN_ROWS, 0, sort=True)}
    for i, name in enumerate(("val", "test", "ood_background", "ood_combo")):
        parts[name] = _split(300, i + 1, sort=False)
    stores = {k: {"h": x} for k, (x, _) in parts.items()}
    tables = {k: {"shape": y} for k, (_, y) in parts.items()}
    y_train = tables["train"]["shape"]
    rows = probe_train_rows(len(y_train), seed=0)
    assert rows.size == PROBE_TRAIN_ROWS and np.unique(y_train[rows]).size == 6
    assert np.unique(y_train[:PROBE_TRAIN_ROWS]).size <= 4  # what the first rows hold
    run = probe("h", stores, tables, seed=0)
    acc = run.accuracy
    assert acc["c"] in run.val_by_c and acc["val"] == max(run.val_by_c.values())
    assert set(run.correct) == {"test", "ood_background", "ood_combo"}
    assert run.correct["test"].mean() == acc["test"]
    assert acc["test"] > 0.95 and acc["ood_combo"] > 0.95
    info = probe_sample(len(y_train), 0)["train_rows"]
    assert info["rows"] == PROBE_TRAIN_ROWS and info["of"] == len(y_train) and "seeded" in info["method"]
