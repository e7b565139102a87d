"""The Matryoshka depth metric on a planted hierarchy, where the answer is known: a nested
dictionary of few high-variance coarse atoms refined by more lower-variance fine ones."""

import numpy as np
import pytest

from vsae.demo.planted_hierarchy import PlantedHierarchyConfig, nested_dictionary, run_planted_hierarchy
from vsae.eval.variance import between_group_fraction


def test_nested_dictionary_is_coarse_to_fine():
    cfg = PlantedHierarchyConfig()
    data = nested_dictionary(cfg)
    fam = data.leaf_N // cfg.n_leaves
    x = data.x_Nd.numpy()
    coarse, fine = between_group_fraction(x, fam), between_group_fraction(x, data.leaf_N)
    assert coarse > 0.6 and fine > coarse  # the family level carries most of the variance
    assert list(data.class_paths.values())[5] == ["f1", "f1_l5"]
    atoms = np.concatenate([data.coarse_Ad.numpy(), data.fine_Ld.numpy()])
    np.testing.assert_allclose(atoms @ atoms.T, np.eye(len(atoms)), atol=1e-5)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    out = tmp_path_factory.mktemp("planted")
    return run_planted_hierarchy(PlantedHierarchyConfig(), out / "m", "matryoshka")


def test_matryoshka_puts_coarse_atoms_first_and_the_depth_metric_says_so(planted):
    d = planted["depth_per_group"]
    assert [g["latents"] for g in d] == [[0, 4], [4, 24]]
    assert d[0]["n_scored"] >= 3 and d[1]["n_scored"] >= 8
    # first group: top images share a family but not a leaf (depth ~1); later: one leaf (depth 2)
    assert d[0]["mean_depth"] <= 1.25 and d[1]["mean_depth"] >= 1.75
    cc, fc = planted["coarse_cosine_per_group"], planted["fine_cosine_per_group"]
    assert cc[0] > 0.6 > fc[0] and fc[1] > cc[1]
