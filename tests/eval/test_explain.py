"""`vsae eval explain` (issue 29): the sets, the scores against direct formulas, the controls, the
ground-truth rule, both explainers, and the command end to end on a shapes-world store with a
planted SAE (one latent per colour and per shape, so the right explanation is known)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.errors import VsaeError
from vsae.eval.explain import (
    LatentSets,
    detection_auroc,
    latent_sets,
    phrase_agreement,
    separation,
    shuffled,
    world_word_values,
)
from vsae.eval.explain_config import ExplainConfig
from vsae.eval.explain_run import explain_latents, ground_truth_of, read_vocabulary
from vsae.eval.explainers import EXPLAINERS, ExplainContext
from vsae.eval.explainers.mllm import contrastive_phrase
from vsae.eval.explainers.vocab import candidates

N_WORLD = 300


def _direct_auroc(pos, neg):
    """P(pos > neg) + P(pos == neg) / 2 over every pair."""
    p, n = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(((p > n) + 0.5 * (p == n)).mean())


# ----------------------------------------------------------------------------- pieces
def test_latent_sets_are_disjoint_and_interleaved():
    rng = np.random.default_rng(0)
    acts = rng.random((200, 6)) * (rng.random((200, 6)) < 0.3)
    acts[:, 5] = 0
    acts[:3, 5] = 1  # fires on 3 images only: not live at n_top 8
    s = latent_sets(acts, n_top=8, n_contrast=20, n_random=30, seed=1)
    assert list(s.latents_L) == [0, 1, 2, 3, 4]
    for j, f in enumerate(s.latents_L):
        order = np.argsort(-acts[:, f], kind="stable")[:8]
        assert set(s.top_Lk[j]) == set(order)
        assert list(s.shown_Lh[j]) == list(s.top_Lk[j][0::2]) and list(s.held_Lh[j]) == list(
            s.top_Lk[j][1::2]
        )
        groups = [set(s.top_Lk[j]), set(s.contrast_Lc[j]), set(s.random_Lr[j])]
        assert sum(map(len, groups)) == len(set().union(*groups)) == 58
    with pytest.raises(VsaeError, match="fewer than"):
        latent_sets(acts, n_top=8, n_contrast=100, n_random=100)
    with pytest.raises(VsaeError, match="at least 2 top images"):
        latent_sets(acts, n_top=1, n_contrast=2, n_random=2)


def test_separation_is_cohens_d():
    rng = np.random.default_rng(0)
    sims = rng.standard_normal((50, 3))
    pos, neg = np.array([[0, 1, 2, 3]]), np.array([[10, 11, 12, 13, 14, 15]])
    d = separation(sims, pos, neg)
    for p in range(3):
        a, b = sims[pos[0], p], sims[neg[0], p]
        assert d[0, p] == pytest.approx((a.mean() - b.mean()) / np.sqrt((a.var() + b.var()) / 2), rel=1e-6)


def test_detection_auroc_matches_the_pairwise_formula():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((40, 5))
    words = {"x": np.eye(5)[0], "y": np.eye(5)[1]}

    def encode(ps):
        return np.stack([words[p] for p in ps])

    sets = LatentSets(
        np.array([0, 1, 2]),
        np.zeros((3, 2), np.int64),
        np.array([[0, 1], [2, 3], [4, 5]]),
        np.zeros((3, 1), np.int64),
        np.array([[10, 11, 12], [13, 14, 15], [16, 17, 18]]),
        np.zeros((3, 4), np.int64),
    )
    got = detection_auroc(["x", "y", None], sets, emb, encode)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert got[0] == pytest.approx(_direct_auroc(unit[[0, 1], 0], unit[[10, 11, 12], 0]))
    assert got[1] == pytest.approx(_direct_auroc(unit[[2, 3], 1], unit[[13, 14, 15], 1]))
    assert np.isnan(got[2])


def test_shuffled_is_a_derangement_of_the_phrases():
    phrases = ["a", "b", None, "c", "d", "e"]
    for seed in range(5):
        s = shuffled(phrases, seed)
        assert s[2] is None
        assert sorted(p for p in s if p) == ["a", "b", "c", "d", "e"]
        assert all(s[j] != phrases[j] for j in (0, 1, 3, 4, 5))
    assert shuffled(["only"], 0) == [None]


def test_phrase_agreement_rule():
    # 4 top images: all red, shapes star, star, star, cross; sizes all different
    codes = {
        "colour": np.array([0, 0, 0, 0, 1]),  # red=0, blue=1
        "shape": np.array([0, 0, 0, 1, 1]),  # star=0, cross=1
        "size": np.array([0, 1, 2, 0, 0]),
    }
    wv = {
        "red": ("colour", 0),
        "blue": ("colour", 1),
        "star": ("shape", 0),
        "cross": ("shape", 1),
        "small": ("size", 0),
    }
    top = np.array([[0, 1, 2, 3]] * 6)
    phrases = ["a red shape", "a red star", "a photo of a star", "a blue star", "a red cross", "a photo"]
    r = phrase_agreement(phrases, top, codes, wv)
    assert r["verdict_L"] == ["agree", "agree", "not_purest", "wrong_value", "wrong_value", "no_attribute"]
    assert r["n_agree"] == 2 and r["agreement"] == pytest.approx(2 / 6)
    assert phrase_agreement([None], top[:1], codes, wv)["verdict_L"] == [None]


def test_world_word_values_leave_out_ambiguous_and_multiword_values():
    wv = world_word_values(
        {"colour": ("red", "blue"), "mood": ("blue", "calm"), "class_name": ("star_five",)}
    )
    assert wv == {"red": ("colour", 0), "calm": ("mood", 1)}
    codes, wv2 = ground_truth_of({"colour": ["red", None, "blue"]})
    assert list(codes["colour"]) == [1, -1, 0] and wv2 == {"blue": ("colour", 0), "red": ("colour", 1)}


def test_candidates_fill_templates_and_skip_missing_slots():
    vocab = {"colour": ["red", "blue"], "shape": ["star"]}
    c = candidates(vocab, ("{word}", "a {colour} {shape}", "a {size} shape"))
    assert c == ["red", "blue", "star", "a red star", "a blue star"]
    with pytest.raises(VsaeError, match="no candidate phrase"):
        candidates(vocab, ("a {size} shape",))


def test_registry_lists_the_builtins_and_refuses_unknown_names():
    assert {"vocab", "mllm"} <= set(EXPLAINERS.names())
    with pytest.raises(VsaeError, match="unknown explainer 'nope'; use one of: .*mllm.*vocab"):
        EXPLAINERS.get("nope")


WORDS = ("red", "blue", "star", "cross", "tiny", "huge", "dotted", "plain")


def _planted(n=240, n_concepts=4, d=8, seed=0):
    """Images with one concept each (concept c: embedding direction c); latent c fires on concept
    c's images. The encoder maps a phrase to the sum of its words' directions."""
    rng = np.random.default_rng(seed)
    concept = np.arange(n) % n_concepts
    emb = 0.25 * rng.standard_normal((n, d))
    emb[np.arange(n), concept] += 1.0
    acts = np.zeros((n, n_concepts))
    acts[np.arange(n), concept] = rng.random(n) + 0.5
    words = list(WORDS[:d])

    def encode(ps):
        out = np.zeros((len(ps), d))
        for i, p in enumerate(ps):
            for w in p.split():
                if w in words:
                    out[i, words.index(w)] += 1
            out[i, -1] += 1e-3
        return out

    return acts, emb, encode, {"word": words}, concept


def test_vocab_explainer_finds_the_planted_concepts_and_beats_the_controls():
    acts, emb, encode, vocab, concept = _planted()
    truth = ({"concept": concept}, {WORDS[c]: ("concept", c) for c in range(4)})
    cfg = ExplainConfig(n_top=16, n_contrast=40, n_random=40, templates=("{word}",))
    r = explain_latents(acts, emb, encode, vocab, cfg, truth)
    assert [x["phrase"] for x in r["latents"]] == list(WORDS[:4])
    assert r["detection"]["mean"] > 0.9 and r["controls"]["shuffled"]["mean"] < 0.7
    assert r["ground_truth"]["explanations"]["agreement"] == 1.0
    assert r["ground_truth"]["shuffled"]["agreement"] == 0.0
    assert r["_arrays"]["phrase_emb"].shape == (4, 8) and r["_arrays"]["top_emb"].shape == (4, 8)


def test_mllm_explainer_keeps_words_said_more_about_the_top_images():
    assert contrastive_phrase([["a", "red", "star"]] * 4, [["a", "blue", "star"]] * 8) == "red"
    assert contrastive_phrase([["red"], ["blue"], ["green"]], [["x"]]) is None  # none on half the top
    acts, emb, encode, vocab, concept = _planted()
    asked = []

    def ask(images, question):
        asked.append(len(images))
        return [f"a {WORDS[c]} thing" for c in images]  # "images" are their concept ids here

    sets = latent_sets(acts, 8, 20, 20)
    ctx = ExplainContext(emb, encode, vocab, images=lambda pos: [int(concept[p]) for p in pos], ask=ask)
    assert EXPLAINERS.get("mllm")(sets, ctx) == list(WORDS[:4])
    assert len(asked) == 1  # one pass over the images every latent needs, answers reused
    with pytest.raises(VsaeError, match="needs a multimodal model"):
        EXPLAINERS.get("mllm")(sets, ExplainContext(emb, encode, vocab))


def test_read_vocabulary(tmp_path):
    (tmp_path / "w.txt").write_text("red\n\n blue \n")
    assert read_vocabulary(tmp_path / "w.txt") == {"word": ["red", "blue"]}
    (tmp_path / "v.json").write_text(json.dumps({"colour": ["red"], "shape": ["star"]}))
    assert read_vocabulary(tmp_path / "v.json") == {"colour": ["red"], "shape": ["star"]}
    (tmp_path / "bad.json").write_text(json.dumps({"colour": "red"}))
    with pytest.raises(VsaeError, match="not an object of word lists"):
        read_vocabulary(tmp_path / "bad.json")


# ----------------------------------------------------------------------------- end to end
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
SHAPES = ("ellipse", "semicircle", "triangle", "square", "star", "cross")


def build_planted_world(root: Path, n: int = N_WORLD) -> dict:
    """A shapes-world test split, its world-CLIP resid.1 (CLS) and embed stores, and a planted ReLU
    SAE on resid.1: latent i < 8 fires on colour COLOURS[i], latent 8 + j on shape SHAPES[j]
    (encoder row: the attribute value's mean minus the overall mean; bias: half-way)."""
    from vsae.extract import ExtractConfig, extract
    from vsae.sae import SAEConfig, build, save
    from vsae.store import ActivationStore
    from vsae.world import export, shipped_clip_dir

    world = root / "world"
    export(world, counts={"test": n}, seed=5, progress=False)
    common = dict(model=str(shipped_clip_dir()), data=str(world), split="test", dtype="float32",
                  tokens="cls", batch_size=64, progress=False)  # fmt: skip
    extract(ExtractConfig(hooks=("resid.1",), out=str(root / "acts"), **common))
    extract(ExtractConfig(hooks=("embed",), out=str(root / "emb"), **common))
    store = ActivationStore.open(root / "acts")
    x = store[:].numpy().astype(np.float64)
    items = json.loads((root / "acts" / "images.json").read_text())["items"]
    attrs = {r["path"]: r for r in json.loads((world / "attributes.json").read_text())}
    recs = [attrs[f"test/{items[i]}"] for i in store.image_index]
    rows = [np.array([r["colour"] == c for r in recs]) for c in COLOURS]
    rows += [np.array([r["shape"] == s for r in recs]) for s in SHAPES]
    mu = x.mean(0)
    W = np.stack([x[m].mean(0) - mu for m in rows])
    W /= np.linalg.norm(W, axis=1, keepdims=True)
    b = -(W @ mu) - 0.5 * np.einsum("fd,fd->f", W, np.stack([x[m].mean(0) for m in rows]) - mu)
    sae = build(SAEConfig(arch="relu", d_in=x.shape[1], d_sae=len(rows)), seed=0)
    with torch.no_grad():
        sae.W_enc_Fd.copy_(torch.tensor(W, dtype=torch.float32))
        sae.W_dec_Fd.copy_(torch.tensor(W, dtype=torch.float32))
        sae.b_enc_F.copy_(torch.tensor(b, dtype=torch.float32))
    save(sae, root / "sae")
    vocab = {"shape": list(SHAPES), "colour": list(COLOURS), "size": ["small", "medium", "large"]}
    (root / "vocab.json").write_text(json.dumps(vocab))
    return {"root": root, "world": world, "acts": root / "acts", "emb": root / "emb", "sae": root / "sae",
            "vocab": root / "vocab.json", "recs": recs}  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build_planted_world(tmp_path_factory.mktemp("explain"))


SMALL = ("--n-top", "8", "--n-contrast", "32", "--n-random", "32")


def test_explain_command_on_the_planted_world(planted, tmp_path, capsys):
    p = planted
    out = tmp_path / "ex"
    args = ["eval", "explain", "--acts", str(p["acts"]), "--sae", str(p["sae"]), "--words", str(p["vocab"]),
            "--image-embeddings", str(p["emb"]), "--table", str(p["acts"]), "--out", str(out), *SMALL, "--quiet"]  # fmt: skip
    main(args)
    printed = json.loads(capsys.readouterr().out)
    ex = json.loads((out / "explanations.json").read_text())
    assert printed["n_explained"] == ex["n_explained"] == len(ex["latents"]) > 0
    assert ex["judge"].endswith("clip") and ex["explainer"] == "vocab"
    assert "localisation" not in ex  # one CLS row per image: no patch maps to localise on
    assert all(r["detection"] is not None and 0 <= r["detection"] <= 1 for r in ex["latents"])
    # the planted colour latents are explained by their colour (alone or with a shape/size)
    colour_rows = [r for r in ex["latents"] if r["latent"] < 8]
    said = [COLOURS[r["latent"]] in r["phrase"].split() for r in colour_rows]
    assert sum(said) >= 0.75 * len(colour_rows), [(r["latent"], r["phrase"]) for r in colour_rows]
    assert ex["detection"]["mean"] > ex["controls"]["shuffled"]["mean"] + 0.2
    g = ex["ground_truth"]
    assert g["explanations"]["agreement"] > g["shuffled"]["agreement"]
    # detection recomputed directly from the written phrases and the same sets
    from vsae.eval.naming import encode_words
    from vsae.models import load
    from vsae.sae import load as load_sae
    from vsae.store import ActivationStore
    from vsae.world import shipped_clip_dir

    with torch.no_grad():
        z = load_sae(p["sae"]).encode(ActivationStore.open(p["acts"])[:]).numpy()
    sets = latent_sets(z, 8, 32, 32, seed=0)
    emb = ActivationStore.open(p["emb"])[:].numpy().astype(np.float64)
    text = load(str(shipped_clip_dir()), tower="text")
    for j, r in enumerate(ex["latents"][:4]):
        s = emb / np.linalg.norm(emb, axis=1, keepdims=True) @ (lambda e: e / np.linalg.norm(e))(
            encode_words(text, [r["phrase"]], "{}")[0])  # fmt: skip
        assert r["detection"] == pytest.approx(
            _direct_auroc(s[sets.held_Lh[j]], s[sets.random_Lr[j]]), abs=1e-6
        )
    from safetensors.numpy import load_file

    arr = load_file(str(out / "explanations.safetensors"))
    assert list(arr["latents"]) == [r["latent"] for r in ex["latents"]]


def test_explain_with_the_tiny_llava(planted, tmp_path, capsys):
    """The mllm explainer on the shipped tiny LLaVA: it answers in words about each image (a small
    model: often one word); every explained latent still gets a detection score."""
    from vsae.world.llava import shipped_llava_dir

    p = planted
    out = tmp_path / "mllm"
    main(["eval", "explain", "--acts", str(p["acts"]), "--sae", str(p["sae"]), "--words", str(p["vocab"]),
          "--image-embeddings", str(p["emb"]), "--out", str(out), "--explainer", "mllm", "--explainer-model",
          str(shipped_llava_dir()), "--question", "What colour is the shape? Use exactly one word!",
          "--max-latents", "4", "--max-new-tokens", "4", *SMALL, "--quiet"])  # fmt: skip
    ex = json.loads((out / "explanations.json").read_text())
    assert ex["explainer"] == "mllm" and ex["n_explained"] == 4
    phrased = [r for r in ex["latents"] if r["phrase"]]
    assert phrased and all(r["detection"] is not None for r in phrased)
    # latents 0..3 are red, orange, yellow, green by construction: the colour answer names them
    assert sum(COLOURS[r["latent"]] in r["phrase"].split() for r in phrased) >= len(phrased) / 2, phrased


def test_explain_options_are_its_config_fields(monkeypatch):
    """The generated options of `vsae eval explain` (tests/cli/test_generated_commands.py's check)."""
    from tests.cli import test_generated_commands as g

    from vsae.cli.eval import eval_group
    from vsae.eval.eval_config import PoolingConfig

    cmd = eval_group.commands["explain"]
    monkeypatch.setitem(g.CASES, "eval explain", (cmd, (ExplainConfig, PoolingConfig), {"templates"}))
    g.test_every_option_is_its_config_field("eval explain")
    assert "templates" not in {p.name for p in cmd.params}  # Python only (a comma list of phrases)


def test_judge_defaults_to_the_stores_clip_and_embeds_the_images(planted, tmp_path, capsys):
    """Without --judge-clip / --image-embeddings the judge is the store's own CLIP (the world CLIP
    has a text tower) and its image embeddings are extracted into OUT/judge-embeddings: the same
    numbers as with the embed store given."""
    p = planted
    common = ["eval", "explain", "--acts", str(p["acts"]), "--sae", str(p["sae"]), "--words", str(p["vocab"]),
              *SMALL, "--max-latents", "5", "--quiet"]  # fmt: skip
    main([*common, "--out", str(tmp_path / "a")])
    main([*common, "--image-embeddings", str(p["emb"]), "--out", str(tmp_path / "b")])
    capsys.readouterr()
    a, b = (json.loads((tmp_path / x / "explanations.json").read_text()) for x in "ab")
    assert (tmp_path / "a" / "judge-embeddings" / "manifest.json").is_file()
    assert a["judge"] == b["judge"] and [r["phrase"] for r in a["latents"]] == [r["phrase"] for r in b["latents"]]
    assert [r["detection"] for r in a["latents"]] == pytest.approx([r["detection"] for r in b["latents"]], abs=1e-5)


def test_localisation_on_patch_tokens(planted, tmp_path, capsys):
    """A patch-level SAE (planted on the patch rows of a `--tokens all` store): every explained
    latent gets a localisation score, the Pearson correlation of its patch map and the judge's
    patch relevance, recomputed here from the model for one latent and image."""
    from vsae.eval.explain_local import _pearson, judge_patch_embeddings
    from vsae.eval.naming import encode_words
    from vsae.extract import ExtractConfig, extract
    from vsae.models import load
    from vsae.sae import SAEConfig, build, save
    from vsae.sae import load as load_sae
    from vsae.store import ActivationStore
    from vsae.world import shipped_clip_dir

    p = planted
    acts = tmp_path / "patch-acts"
    extract(ExtractConfig(model=str(shipped_clip_dir()), hooks=("resid.1",), tokens="all", data=str(p["world"]),
                          split="test", out=str(acts), dtype="float32", batch_size=64, progress=False))  # fmt: skip
    st = ActivationStore.open(acts)
    x, img, tok = st[:].numpy().astype(np.float64), st.image_index, st.token_index
    red = np.array([p["recs"][int(i)]["colour"] == "red" for i in img]) & (tok > 0)
    w = x[red].mean(0) - x[tok > 0].mean(0)
    w /= np.linalg.norm(w)
    sae = build(SAEConfig(arch="relu", d_in=x.shape[1], d_sae=2), seed=0)
    with torch.no_grad():
        W = torch.tensor(np.stack([w, -w]), dtype=torch.float32)
        sae.W_enc_Fd.copy_(W)
        sae.W_dec_Fd.copy_(W)
        sae.b_enc_F.copy_(torch.tensor(-(W.double().numpy() @ x[tok > 0].mean(0)), dtype=torch.float32))
    save(sae, tmp_path / "sae")
    out = tmp_path / "ex"
    main(["eval", "explain", "--acts", str(acts), "--sae", str(tmp_path / "sae"), "--words", str(p["vocab"]),
          "--image-embeddings", str(p["emb"]), "--out", str(out), *SMALL, "--quiet"])  # fmt: skip
    capsys.readouterr()
    ex = json.loads((out / "explanations.json").read_text())
    assert ex["localisation"]["n"] >= 1 and -1 <= ex["localisation"]["mean_r"] <= 1
    assert "shuffled_mean_r" in ex["localisation"]
    row = ex["latents"][0]
    assert -1 <= row["localisation"] <= 1
    # direct: the held-out images of that latent, its map from the SAE on the patch rows
    z = load_sae(tmp_path / "sae").encode(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    pooled = np.stack([z[img == i].mean(0) for i in np.unique(img)])
    sets = latent_sets(pooled, 8, 32, 32, seed=0)
    j = list(sets.latents_L).index(row["latent"])
    from PIL import Image

    items = json.loads((acts / "images.json").read_text())["items"]
    judge = load(str(shipped_clip_dir()))
    t = encode_words(load(str(shipped_clip_dir()), tower="text"), [row["phrase"]], "{}")[0]
    t /= np.linalg.norm(t)
    rs = []
    for pos in sets.held_Lh[j]:
        i = np.unique(img)[pos]
        (e,) = judge_patch_embeddings(judge, [Image.open(p["world"] / "test" / items[i]).convert("RGB")])
        m = (img == i) & (tok > 0)
        zmap = z[m][np.argsort(tok[m]), row["latent"]]
        rel = e @ t
        assert rel.size == zmap.size  # the judge is the explained model here: the same grid
        rs.append(_pearson(zmap, rel))
    assert row["localisation"] == pytest.approx(np.nanmean(rs), abs=1e-4)
