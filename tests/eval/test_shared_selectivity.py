"""Shared latents by selectivity in both modalities (vsae.eval.selectivity) against direct
implementations: AUROC, matched vs mismatched-value counts, power, next-word labels, the control."""

import numpy as np
import pytest
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from vsae.eval import selectivity as S


def test_auroc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    z = rng.random((80, 5)) * (rng.random((80, 5)) < 0.4)  # many tied zeros
    masks = rng.random((3, 80)) < 0.3
    got = S.auroc_by_value(z, masks)
    for v in range(3):
        for f in range(5):
            assert got[v, f] == pytest.approx(roc_auc_score(masks[v], z[:, f]))
    assert np.isnan(S.auroc_by_value(z, np.zeros((1, 80), bool))).all()
    np.testing.assert_array_equal(
        S.fires_by_value(z, masks), [[(z[masks[v], f] > 0).sum() for f in range(5)] for v in range(3)]
    )


def test_image_units_and_next_word():
    z = np.array([[1.0, 0], [3, 0], [0, 2], [0, 0]])
    ids, zi = S.image_units(z, np.array([5, 5, 7, 7]))
    assert ids.tolist() == [5, 7] and zi.tolist() == [[3, 0], [0, 2]]
    words = ["a", "red", "star", "a", "cross"]
    nxt = S.next_word(np.array([0, 0, 0, 1, 1]), np.array([1, 2, 3, 1, 3]), words)
    assert nxt == ["red", "star", "", "", ""]  # image 1 has no row at position 2


def _direct_cross(ia, ifi, ta, tfi, attr, thr, m):
    img = [
        (v, f) for v in range(ia.shape[0]) for f in range(ia.shape[1]) if ia[v, f] >= thr and ifi[v, f] >= m
    ]
    txt = lambda v, f: ta[v, f] >= thr and tfi[v, f] >= m  # noqa: E731
    matched = sum(txt(v, f) for v, f in img)
    mis = [txt(w, f) for v, f in img for w in range(len(attr)) if w != v and attr[w] == attr[v]]
    return len(img), matched, sum(mis) / len(mis)


def test_cross_modal_counts_match_direct_loops():
    rng = np.random.default_rng(1)
    V, F = 6, 40
    ia, ta = rng.random((V, F)), rng.random((V, F))
    ifi, tfi = rng.integers(0, 20, (V, F)), rng.integers(0, 20, (V, F))
    attr = ["shape"] * 3 + ["colour"] * 3
    res = S.cross_modal(ia, ifi, ta, tfi, attr, threshold=0.7, min_fires=5)
    n, k, p0 = _direct_cross(ia, ifi, ta, tfi, attr, 0.7, 5)
    assert (res["n_image_selective"], res["n_shared"]) == (n, k)
    assert res["mismatched_rate"] == pytest.approx(p0)
    assert res["p_value"] == pytest.approx(binom.sf(k - 1, n, p0))


def test_min_detectable_rate_is_where_power_reaches_80_percent():
    n, p0 = 29, 0.01
    mde = S.min_detectable_rate(n, p0)
    k_c = next(k for k in range(n + 1) if binom.sf(k - 1, n, p0) <= 0.05)
    assert binom.sf(k_c - 1, n, mde) == pytest.approx(0.8, abs=1e-6)
    assert binom.sf(k_c - 1, n, mde - 0.01) < 0.8
    assert S.min_detectable_rate(2, 0.5) == 1.0  # no count of 2 is significant against 0.5


def _world(rng, n_img=200, tokens=4, shared=True):
    """Images with a colour; captions "a <colour> star"; latent 0 fires on red images and on the
    row before "red" (it predicts the word) when `shared`; latent 1 fires on blue images only."""
    colours = np.array(["red", "blue", "green", "pink"])[rng.integers(0, 4, n_img)]
    table = {"colour": colours.astype(object)}
    img_rows = np.repeat(np.arange(n_img), tokens)
    z_img = np.zeros((img_rows.size, 3))
    z_img[:, 0] = (colours[img_rows] == "red") * rng.random(img_rows.size)
    z_img[:, 1] = (colours[img_rows] == "blue") * rng.random(img_rows.size)
    z_img[:, 2] = rng.random(img_rows.size) * (rng.random(img_rows.size) < 0.3)
    words = [w for c in colours for w in ("a", c, "star")]
    txt_img = np.repeat(np.arange(n_img), 3)
    txt_tok = np.tile([1, 2, 3], n_img)
    z_txt = np.zeros((len(words), 3))
    before_red = np.array([w == "a" and c == "red" for w, c in zip(words, colours[txt_img])])
    if shared:
        z_txt[before_red, 0] = 1.0
    z_txt[:, 2] = rng.random(len(words)) * (rng.random(len(words)) < 0.3)
    return z_img, img_rows, z_txt, txt_img, txt_tok, words, table


@pytest.mark.parametrize("shared", [True, False])
def test_layer_selectivity_finds_a_planted_shared_latent_by_its_next_word(shared):
    rng = np.random.default_rng(2)
    z_img, img_rows, z_txt, txt_img, txt_tok, words, table = _world(rng, shared=shared)
    lex = {w: ("colour", w) for w in ("red", "blue", "green", "pink")}
    res = S.layer_selectivity(z_img, img_rows, z_txt, txt_img, txt_tok, words, table, lex, min_fires=5)
    assert res["n_image_selective"] == 2  # latents 0 (red) and 1 (blue) on images
    assert res["control"]["found"] and res["control"]["n_found"] == res["control"]["n_planted"] == 4
    if shared:
        assert res["shared_latents"] == [0] and res["shared_pairs"][0]["value"] == "colour=red"
        assert res["shared_pairs"][0]["text_word"] == "next" and res["shared_pairs"][0]["text_auroc"] == 1.0
    else:
        assert res["shared_latents"] == [] and not res["found"]


def test_phrase_words_label_their_own_row_only():
    words = ["a", "pointed", "star"]
    keys = [("shape", "star")]
    lex, phrases = {"star": ("shape", "star")}, {"pointed": ("shape", "star")}
    cur = S.word_masks(keys, words, [""] * 3, {**lex, **phrases})
    nxt = S.word_masks(keys, [""] * 3, S.next_word(np.zeros(3), np.arange(3), words), lex)
    assert cur.tolist() == [[False, True, True]] and nxt.tolist() == [[False, True, False]]
