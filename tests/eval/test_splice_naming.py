import numpy as np
import pytest
import torch
from PIL import Image

from vsae.errors import VsaeError
from vsae.eval.naming import encode_words, name_agreement, name_latents
from vsae.eval.zeroshot import zero_shot_accuracy
from vsae.steer.reconstruction import final_embeddings, splice_effect, splice_reconstruction


class Scale(torch.nn.Module):
    """A stand-in SAE: encode = identity, decode = times `s` (so the splice is easy to predict)."""

    def __init__(self, d, s):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.s = s

        class C:
            d_in = d

        self.cfg = C()

    def encode(self, x):
        return x

    def decode(self, z):
        return z * self.s


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from vsae.models import load
    from vsae.models.tiny_models import build_tiny

    d = build_tiny("clip", tmp_path_factory.mktemp("clip"))
    return load(str(d)), load(str(d), tower="text")


def _images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def test_splice_replaces_hook_output_and_is_removed(tiny_clip):
    from vsae.models import capture

    lm, _ = tiny_clip
    inputs = lm.preprocess(_images(3))
    with capture(lm, "resid.0") as cap:
        lm.run(inputs)
        base = cap.output.clone()
    with splice_reconstruction(lm, "resid.0", Scale(base.shape[-1], 2.0)), capture(lm, "resid.0") as cap:
        lm.run(inputs)
        torch.testing.assert_close(cap.output, 2 * base)
    e0 = final_embeddings(lm, inputs)
    with splice_reconstruction(lm, "resid.0", Scale(base.shape[-1], 1.0)):
        torch.testing.assert_close(final_embeddings(lm, inputs), e0)
    torch.testing.assert_close(final_embeddings(lm, inputs), e0)  # hook removed
    with (
        pytest.raises(VsaeError, match="SAE's d_in is 5"),
        splice_reconstruction(lm, "resid.0", Scale(5, 1.0)),
    ):
        lm.run(inputs)


def test_splice_effect_with_a_real_sae(tiny_clip):
    from vsae.sae import SAEConfig, build

    lm, _ = tiny_clip
    sae = build(SAEConfig(arch="topk", d_in=32, d_sae=64, k=4), seed=0)
    out = splice_effect(lm, "resid.1", sae, [lm.preprocess(_images(2)), lm.preprocess(_images(3))])
    assert out["cosine"].shape == (5,) and np.all(np.abs(out["cosine"]) <= 1 + 1e-9)
    assert out["original"].shape == out["spliced"].shape == (5, 16)
    assert not np.allclose(out["original"], out["spliced"])


def test_zero_shot_accuracy_direct():
    img = np.array([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0], [-1.0, 0.2]])
    txt = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert zero_shot_accuracy(img, txt, [0, 1, 0, 0]) == 0.75
    with pytest.raises(VsaeError, match="4 images but 3 labels"):
        zero_shot_accuracy(img, txt, [0, 1, 0])


def test_naming_matches_direct_and_agreement(tiny_clip):
    rng = np.random.default_rng(0)
    words = ["cat", "dog", "bird"]
    w = rng.normal(size=(3, 6))
    labels = rng.integers(0, 3, size=20)
    img = w[labels] + 0.1 * rng.normal(size=(20, 6))
    hai = np.stack([np.flatnonzero(labels == c)[:3] for c in (0, 1, 2)] + [np.array([0, 1, 2])])
    excluded = np.array([False, False, False, True])
    out = name_latents(hai, excluded, img, w, words)
    assert out["names"][:3] == words and out["names"][3] is None
    for f in range(3):
        m = (img[hai[f]] / np.linalg.norm(img[hai[f]], axis=1, keepdims=True)).mean(0)
        sims = [float(m @ wv / np.linalg.norm(m) / np.linalg.norm(wv)) for wv in w]
        assert out["scores"][f] == pytest.approx(max(sims))
    agr = name_agreement(out["names"], hai, labels, ["Cat", "dog", "fish"])
    assert agr == {"n_named": 3, "n_agree": 2, "agreement": 2 / 3}
    _, lm_text = tiny_clip
    emb = encode_words(lm_text, ["cat", "dog"])
    assert emb.shape == (2, 16) and not np.allclose(emb[0], emb[1])


def test_attribute_name_agreement_needs_the_purest_attribute():
    from vsae.eval.naming import attribute_name_agreement

    # 8 images; shape codes and colour codes per image
    shape = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    colour = np.array([0, 0, 1, 2, 0, 0, 0, 0])
    words = {"circle": ("shape", 0), "square": ("shape", 1), "red": ("colour", 0), "blue": ("colour", 1)}
    hai = np.array(
        [
            [0, 1, 2, 3],  # all circles, colours 0,0,1,2: "red" is the most common colour but shape is purer
            [0, 1, 2, 3],  # the same images named "circle": agrees
            [4, 5, 6, 7],  # squares, all colour 0: shape and colour tie, "red" agrees
            [4, 5, 6, 7],  # named "circle": wrong value of the purest attribute
            [0, 1, -1, -1],  # padded; "blue" is wrong
        ]
    )
    names = ["red", "circle", "red", "circle", "blue"]
    res = attribute_name_agreement(
        names + [None], np.vstack([hai, hai[:1]]), {"shape": shape, "colour": colour}, words
    )
    assert res["verdict_F"] == ["not_purest", "agree", "agree", "wrong_value", "wrong_value", None]
    assert res["n_named"] == 5 and res["n_agree"] == 2 and res["agreement"] == pytest.approx(0.4)
    assert res["n_not_purest"] == 1 and res["n_wrong_value"] == 2
    # the old rule (most common value of the word's attribute) counted latent 0 as agreeing
    assert np.bincount(colour[hai[0]]).argmax() == words["red"][1]
    with pytest.raises(VsaeError, match="no attribute value"):
        attribute_name_agreement(["green"], hai[:1], {"shape": shape, "colour": colour}, words)
    # with unmapped="disagree" (`vsae eval names`) such a name is named and disagrees
    res = attribute_name_agreement(
        ["green", "circle"], hai[:2], {"shape": shape, "colour": colour}, words, unmapped="disagree"
    )
    assert res["verdict_F"] == ["no_attribute", "agree"] and (res["n_named"], res["n_agree"]) == (2, 1)


def test_attribute_codes_from_string_values():
    from vsae.eval.naming import attribute_codes

    values = {
        "shape": ["square", "circle", None, "circle"],
        "colour": ["Dark_Red", "blue", "blue", None],
    }
    codes, word_value = attribute_codes(values, ["circle", "dark red", "BLUE", "car"])
    np.testing.assert_array_equal(codes["shape"], [1, 0, -1, 0])  # sorted values: circle, square
    np.testing.assert_array_equal(codes["colour"], [0, 1, 1, -1])  # sorted: "Dark_Red" < "blue"
    assert word_value == {"circle": ("shape", 0), "dark red": ("colour", 0), "BLUE": ("colour", 1)}
    with pytest.raises(VsaeError, match="is a value of attributes"):
        attribute_codes({"a": ["x"], "b": ["x"]}, ["x"])
