import itertools
import json
import os
from collections import Counter

import numpy as np
import pytest

from vsae.errors import VsaeError
from vsae.eval.class_hierarchy import from_file, from_inat_names, from_wordnet
from vsae.eval.hierarchy import (
    depth_per_group,
    latent_lca_depths,
    lca_depth_matrix,
    ontology_report,
)

INAT = [
    "00000_Animalia_Chordata_Aves_Passeriformes_Corvidae_Corvus_corax",
    "00001_Animalia_Chordata_Aves_Passeriformes_Corvidae_Pica_pica",
    "00002_Animalia_Chordata_Mammalia_Carnivora_Felidae_Felis_catus",
    "00003_Plantae_Tracheophyta_Magnoliopsida_Rosales_Rosaceae_Rosa_canina",
]


def prefix_len(p, q):
    n = 0
    for x, y in zip(p, q):
        if x != y:
            break
        n += 1
    return n


def test_inat_paths_and_lca_depth_direct():
    tax = from_inat_names(INAT)
    assert len(tax.paths[INAT[0]]) == 7
    m = lca_depth_matrix(tax, INAT)
    for i, j in itertools.product(range(4), repeat=2):
        assert m[i, j] == prefix_len(INAT[i].split("_")[1:], INAT[j].split("_")[1:])
    assert m[0, 1] == 5 and m[0, 2] == 2 and m[0, 3] == 0 and m[2, 2] == 7
    with pytest.raises(VsaeError, match="not an iNaturalist"):
        from_inat_names(["cat"])


def test_latent_depths_match_direct_and_groups():
    rng = np.random.default_rng(0)
    tax = from_inat_names(INAT)
    m = lca_depth_matrix(tax, INAT)
    labels = rng.integers(0, 4, size=30)
    hai = rng.integers(0, 30, size=(12, 5))
    hai[3, 3:] = -1  # padded
    excluded = np.zeros(12, dtype=bool)
    excluded[7] = True
    got = latent_lca_depths(hai, excluded, labels, m)
    for f in range(12):
        imgs = [i for i in hai[f] if i >= 0]
        ds = [
            prefix_len(INAT[labels[a]].split("_")[1:], INAT[labels[b]].split("_")[1:])
            for a, b in itertools.combinations(imgs, 2)
        ]
        if f == 7:
            assert got["rounded"][f] == -1 and np.isnan(got["mean"][f])
            continue
        mean = sum(ds) / len(ds)
        assert got["mean"][f] == pytest.approx(mean)
        assert got["rounded"][f] == int(np.floor(mean + 0.5))
        c = Counter(ds)
        assert got["majority"][f] == min(d for d in c if c[d] == max(c.values()))
    groups = depth_per_group(got, [2, 4, 6])
    assert [g["latents"] for g in groups] == [[0, 2], [2, 6], [6, 12]]
    assert groups[2]["n_scored"] == 5
    assert groups[0]["mean_depth"] == pytest.approx(got["rounded"][:2].mean())
    with pytest.raises(VsaeError, match="cover 5 latents"):
        depth_per_group(got, [5])


def test_taxonomy_files_and_missing_classes(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(
        json.dumps(
            {
                "dog": ["animal", "mammal", "dog"],
                "cat": ["animal", "mammal", "cat"],
                "rose": ["plant", "rose"],
            }
        )
    )
    c = tmp_path / "t.csv"
    c.write_text("class,path\ndog,animal/mammal/dog\ncat,animal/mammal/cat\nrose,plant/rose\n")
    for p in (j, c):
        tax = from_file(p)
        m = lca_depth_matrix(tax, ["dog", "cat", "rose"])
        assert m.tolist() == [[3, 2, 0], [2, 3, 0], [0, 0, 2]]
        with pytest.raises(VsaeError, match="missing from the taxonomy.*: fish"):
            lca_depth_matrix(tax, ["dog", "fish"])


def test_ontology_on_a_tree(tmp_path):
    j = tmp_path / "t.json"
    j.write_text(
        json.dumps(
            {
                "dog": ["animal", "mammal", "dog"],
                "cat": ["animal", "mammal", "cat"],
                "crow": ["animal", "bird", "crow"],
                "rose": ["plant", "rose"],
            }
        )
    )
    tax = from_file(j)
    names = ["dog", "cat", "crow", "rose"]
    labels = np.array([0, 1, 2, 3, 0, 1])
    hai = np.array([[0, 1], [0, 4], [0, 2], [0, 3], [5, 1]])
    excluded = np.array([False, False, False, False, True])
    rep = ontology_report(hai, excluded, labels, tax, names)
    lch = [x if x is None else x[0] for x in rep["lch"]]
    assert lch == ["animal/mammal", "animal/mammal/dog", "animal", "<root>", None]
    assert [x[2] for x in rep["lch"][:4]] == [1, 0, 2, 3]
    # internal nodes: <root> (joins animal and plant), animal, animal/mammal, animal/bird, plant;
    # 3 of 5 are an LCH
    assert rep["n_internal_nodes"] == 5 and rep["ontological_coverage"] == 0.6
    assert rep["n_latents_leaf_lch"] == 1 and rep["n_latents_no_common_ancestor"] == 0
    assert "project definition" in rep["definition"]


def test_wordnet_hierarchy():
    assert os.path.isfile("/usr/share/wordnet/data.noun"), (
        "Debian wordnet-base is missing: run scripts/setup.sh"
    )
    dog, cat, tench = "n02084071", "n02121808", "n01440764"
    tax = from_wordnet([dog, cat, tench])
    assert tax.name(tax.paths[dog][0]) == "entity" and tax.name(tax.class_node(dog)) == "dog"
    m = lca_depth_matrix(tax, [dog, cat, tench])
    assert tax.name(tax.paths[dog][m[0, 1] - 1]) == "carnivore"
    assert tax.name(tax.paths[dog][m[0, 2] - 1]) == "vertebrate"
    rep = ontology_report(np.array([[0, 1]]), np.array([False]), np.array([0, 1]), tax, [dog, cat, tench])
    assert rep["lch"][0][1] == "carnivore"


def test_wordnet_missing_dir_message(tmp_path):
    with pytest.raises(VsaeError, match="apt-get install -y wordnet-base"):
        from_wordnet(["n02084071"], wordnet_dir=tmp_path)


def test_depth_trend_is_last_minus_first_with_a_direct_bootstrap():
    from vsae.eval.hierarchy import depth_trend

    rng = np.random.default_rng(0)
    rounded = rng.integers(0, 3, 24)
    rounded[[1, 5, 20]] = -1  # not scored
    got = depth_trend({"rounded": rounded}, [4, 8, 12], n_boot=300, seed=3)
    first, last = rounded[:4][rounded[:4] >= 0], rounded[12:][rounded[12:] >= 0]
    r = np.random.default_rng(3)
    i_f = r.integers(0, first.size, (300, first.size))
    i_l = r.integers(0, last.size, (300, last.size))
    diffs = last[i_l].mean(1) - first[i_f].mean(1)
    assert got["estimate"] == pytest.approx(last.mean() - first.mean())
    assert (got["lo"], got["hi"]) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])))
    assert (got["n_first"], got["n_last"]) == (first.size, last.size)
    assert depth_trend({"rounded": np.array([2, -1, 1, 1])}, [2, 2]) is None  # one scored latent first
