"""Sweep expansion (`vsae.sae.expand_sweep`) and the aux-k default rule live in the library."""

from __future__ import annotations

import pytest

from vsae.errors import VsaeError
from vsae.sae import SAEConfig, expand_sweep, run_name


def test_grid_order_names_and_fixed_fields():
    cfgs = expand_sweep(16, (2, 4.5), arch="matryoshka", k=(3, 5), aux_coeff=0.1, groups=(0.5, 0.5))
    assert [c.name for c in cfgs] == [
        "matryoshka-x2-k3",
        "matryoshka-x2-k5",
        "matryoshka-x4.5-k3",
        "matryoshka-x4.5-k5",
    ]
    assert [(c.d_sae, c.k) for c in cfgs] == [(32, 3), (32, 5), (72, 3), (72, 5)]
    assert {c.aux_coeff for c in cfgs} == {0.1} and {c.groups for c in cfgs} == {
        (0.5, 0.5)
    }  # a tuple field is not an axis
    topk = expand_sweep(16, 2, arch="topk", k=3, groups=(0.5, 0.5))  # groups: not a topk setting
    assert [type(c).__name__ for c in topk] == ["TopKConfig"] and not hasattr(topk[0], "groups")
    two = expand_sweep(16, 2, arch="relu", k=(3, 5), l1_coeff=[0.1, 1.0])  # no k axis for relu
    assert [(c.name, c.l1_coeff) for c in two] == [("relu-x2", 0.1), ("relu-x2", 1.0)]
    assert not hasattr(two[0], "k")
    assert [c.name for c in expand_sweep(16, (1, 2), arch="relu", name="mine")] == ["mine", "mine"]


def test_bad_sweeps_are_refused():
    with pytest.raises(VsaeError, match="--expansion must be positive"):
        expand_sweep(16, (0,))
    with pytest.raises(VsaeError, match="not sweep fields"):
        expand_sweep(16, 2, d_sae=8)
    with pytest.raises(VsaeError, match="not sweep fields"):
        expand_sweep(16, 2, bogus=1)


def test_one_aux_k_rule():
    assert SAEConfig(arch="topk", d_in=64, d_sae=256, k=4).aux_k == 32  # unset: d_in / 2
    assert SAEConfig(arch="topk", d_in=64, d_sae=256, k=4, aux_k=8).aux_k == 8  # explicit wins
    assert SAEConfig(arch="topk", d_in=64, d_sae=256, k=4, aux_k=0).aux_k == 0  # 0 = off
    with pytest.raises(VsaeError, match="aux_k: not a setting of SAE architecture 'jumprelu'"):
        SAEConfig(arch="jumprelu", d_in=64, d_sae=256, aux_k=8)  # no k: no aux-k loss
    assert run_name(SAEConfig(arch="matryoshka", d_in=8, d_sae=32, k=2)) == "matryoshka-x4-k2"
    with pytest.raises(VsaeError, match="--aux-k must be >= 0"):
        SAEConfig(arch="topk", d_in=8, d_sae=16, k=2, aux_k=-1)


def test_nested_groups_come_from_the_registry():
    assert SAEConfig(arch="matryoshka", d_in=4, d_sae=64, k=2).nested_groups == (4, 8, 16, 36)
    assert SAEConfig(arch="batchtopk", d_in=4, d_sae=64, k=2).nested_groups == (64,)  # one group
