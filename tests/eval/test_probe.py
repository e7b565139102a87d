import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.eval.probe import ProbeConfig, compare_probes, probe_accuracy


def test_probe_separable_and_shifted():
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=5, size=(3, 6))
    y = rng.integers(0, 3, size=90)
    x = centers[y] + rng.normal(size=(90, 6))
    yt = rng.integers(0, 3, size=60)
    xt = centers[yt] + rng.normal(size=(60, 6))
    xs = centers[yt][:, ::-1] + rng.normal(size=(60, 6))  # a "shift" that scrambles the features
    acc = probe_accuracy((x, y), {"test": (xt, yt), "shift": (xs, yt)})
    assert acc["train"] > 0.95 and acc["test"] > 0.9 and acc["shift"] < 0.8
    both = compare_probes(
        {"train": (x, y), "test": (xt, yt)}, {"train": (np.abs(x), y), "test": (np.abs(xt), yt)}
    )
    assert set(both) == {"raw", "sae"} and set(both["raw"]) == {"train", "test"}


def test_probe_errors():
    with pytest.raises(VsaeError, match="5 feature rows but 4 labels"):
        probe_accuracy((np.zeros((5, 2)), np.zeros(4)), {})
    with pytest.raises(VsaeError, match="single class"):
        probe_accuracy((np.zeros((5, 2)), np.zeros(5)), {}, ProbeConfig(max_iter=5))
