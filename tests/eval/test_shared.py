"""Shared vision/language latents (vsae.eval.shared): densities, the modality ratio, the shared
fraction, top tokens and ground-truth agreement against direct implementations on small data,
and `vsae eval shared` end to end."""

import json

import numpy as np
import pytest
import torch

from vsae.cli import main
from vsae.eval import shared as S


def _sparse(rng, n, F, p=0.3):
    z = rng.random((n, F)) * (rng.random((n, F)) < p)
    return z.astype(np.float32)


def test_densities_ratio_and_shared_fraction_match_direct_loops():
    rng = np.random.default_rng(0)
    z = _sparse(rng, 60, 12)
    z[:, 3] = 0  # dead
    z[:, 4] = 0
    z[rng.random(60) < 0.5, 4] = 1.0  # fires on both modalities
    mod = (rng.random(60) < 0.4).astype(np.int8)
    z[mod == 1, 5] = 0  # image only
    chunks = [(z[a : a + 7], mod[a : a + 7]) for a in range(0, 60, 7)]
    d_img, d_txt, n_img, n_txt = S.modality_densities(chunks, 12)
    assert (n_img, n_txt) == (int((mod == 0).sum()), int((mod == 1).sum()))
    for f in range(12):
        di = sum(1 for i in range(60) if mod[i] == 0 and z[i, f] > 0) / n_img
        dt = sum(1 for i in range(60) if mod[i] == 1 and z[i, f] > 0) / n_txt
        assert d_img[f] == pytest.approx(di) and d_txt[f] == pytest.approx(dt)
    r = S.modality_ratio(d_img, d_txt)
    assert np.isnan(r[3]) and r[5] == 1.0
    live = [f for f in range(12) if d_img[f] + d_txt[f] > 0]
    shared = [f for f in live if 0.2 <= d_img[f] / (d_img[f] + d_txt[f]) <= 0.8]
    assert 4 in shared
    summ = S.ratio_summary(r, bins=10)
    assert summ["n_live"] == len(live) and summ["n_shared"] == len(shared)
    assert summ["shared_fraction"] == pytest.approx(len(shared) / len(live))
    hist = [
        sum(1 for f in live if (b / 10 <= r[f] < (b + 1) / 10) or (b == 9 and r[f] == 1.0)) for b in range(10)
    ]
    assert summ["ratio_histogram"]["counts"] == hist
    assert summ["n_image_leaning"] == sum(1 for f in live if r[f] > 0.8)


def test_shared_band_edges_are_inclusive():
    r = np.array([0.2, 0.8, 0.19999, 0.80001, np.nan, 0.5])
    assert S.shared_mask(r).tolist() == [True, True, False, False, False, True]


def test_a_modality_without_rows_is_an_error():
    with pytest.raises(Exception, match="no text-token rows"):
        S.modality_densities([(np.ones((3, 2)), np.zeros(3, np.int8))], 2)


def test_top_rows_match_a_direct_sort():
    rng = np.random.default_rng(1)
    z = _sparse(rng, 50, 6, p=0.2)
    z[7, 0] = z[9, 0] = 5.0  # a tie: the earlier row first
    top = S.TopRows(6, 4)
    for a in range(0, 50, 8):
        top.update(torch.from_numpy(z[a : a + 8]), np.arange(a, min(a + 8, 50)))
    got = top.result()
    for f in range(6):
        fired = [i for i in range(50) if z[i, f] > 0]
        want = sorted(fired, key=lambda i: (-z[i, f], i))[:4]
        assert got[f].tolist() == want


def test_lexicon_and_words():
    lex = S.word_lexicon({"colour": ["red", "blue"], "shape": ["square", "red"], "size": ["very large"]})
    assert lex == {"blue": ("colour", "blue"), "square": ("shape", "square")}  # 'red' is ambiguous
    assert S.word_of("▁Red") == "red" and S.word_of("Ġsquare") == "square" and S.word_of("##ing") == "ing"
    assert S.text_value(["a", "blue", "square", "square"], lex) == ("shape", "square")
    assert S.text_value(["blue", "square"], lex) == ("colour", "blue")  # tie: the first met
    assert S.text_value(["a", "of"], lex) is None


def _direct_agreement(top_images, text_values, table):
    def img_val(imgs, attr):
        vals = [table[attr][i] for i in imgs if table[attr][i] is not None]
        if not vals:
            return None
        best = max(vals, key=lambda v: (vals.count(v), -vals.index(v)))
        return best

    scored = [i for i in range(len(top_images)) if text_values[i] is not None and len(top_images[i])]
    agree = np.mean([img_val(top_images[i], text_values[i][0]) == text_values[i][1] for i in scored])
    # the exact expectation of the random baseline: every other scored latent's text side, equally likely
    rand = np.mean(
        [
            np.mean(
                [img_val(top_images[i], text_values[g][0]) == text_values[g][1] for g in scored if g != i]
            )
            for i in scored
        ]
    )
    return len(scored), agree, rand


def test_agreement_matches_a_direct_implementation():
    rng = np.random.default_rng(2)
    colours, shapes = ["red", "blue", "green"], ["square", "circle"]
    n_img = 40
    table = {
        "colour": np.array([colours[i] for i in rng.integers(0, 3, n_img)], dtype=object),
        "shape": np.array([shapes[i] for i in rng.integers(0, 2, n_img)], dtype=object),
    }
    table["shape"][5] = None  # unknown values are not counted
    top_images = [rng.integers(0, n_img, rng.integers(1, 8)) for _ in range(25)] + [np.zeros(0, np.int64)]
    vals = [("colour", c) for c in colours] + [("shape", s) for s in shapes] + [None]
    text_values = [vals[i] for i in rng.integers(0, len(vals), 26)]
    res = S.agreement(top_images, text_values, table, seed=0, n_draws=3000)
    n, agree, rand = _direct_agreement(top_images, text_values, table)
    assert res["n_scored"] == n and res["agreement"] == pytest.approx(agree)
    assert abs(res["random_agreement"] - rand) < 0.02  # a seeded estimate of the exact expectation
    assert S.agreement(top_images, text_values, table, seed=0, n_draws=50) == S.agreement(
        top_images, text_values, table, seed=0, n_draws=50
    )


def test_p_value_is_the_binomial_upper_tail():
    from math import comb

    for k, n, p in ((5, 14, 0.209), (0, 4, 0.3), (4, 4, 0.5), (2, 9, 0.0)):
        want = sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))
        assert S.agreement_p_value(k, n, p) == pytest.approx(want, abs=1e-12)
    assert np.isnan(S.agreement_p_value(0, 0, 0.5))


def test_agreement_on_a_hand_example():
    table = {
        "colour": np.array(["red", "red", "blue", "blue"], dtype=object),
        "shape": np.array(["square", "circle", "square", "square"], dtype=object),
    }
    top = [np.array([0, 1, 0]), np.array([2, 3]), np.array([1])]
    text = [("colour", "red"), ("shape", "circle"), None]
    res = S.agreement(top, text, table, n_draws=10)
    assert (
        res["n_scored"] == 2 and res["agreement"] == 0.5 and res["p_value"] == 0.0
    )  # 1 agrees, random never
    # latent 0 with latent 1's text side: most common shape of images 0,1,0 is square != circle;
    # latent 1 with latent 0's: colour of images 2,3 is blue != red
    assert res["random_agreement"] == 0.0


# -- `vsae eval shared` end to end on a hand-made mixed store -----------------------------------------
@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    from vsae.sae import SAEConfig, build, save
    from vsae.store.columns import ColumnStoreWriter
    from vsae.store.manifest import atomic_write_json

    root = tmp_path_factory.mktemp("shared")
    rng = np.random.default_rng(3)
    colours, shapes = ["red", "blue"], ["square", "circle"]
    recs = [
        {"path": f"train/c/{i}.png", "colour": colours[i % 2], "shape": shapes[(i // 2) % 2]}
        for i in range(12)
    ]
    (root / "world").mkdir()
    (root / "world" / "attributes.json").write_text(json.dumps(recs))
    vocab = {"0": "<s>", "1": "a", "2": "red", "3": "blue", "4": "square", "5": "circle"}
    store = root / "store"
    w = ColumnStoreWriter.create_or_resume(
        store, d=8, dtype="float32", provenance={"hook": "resid.0"}, rows_per_shard=20, end_image=12
    )
    for i in range(12):
        n_img, n_txt = 3, 4
        x = torch.from_numpy(rng.standard_normal((n_img + n_txt, 8)).astype(np.float32))
        tid = np.concatenate([np.full(n_img, -1), rng.integers(1, 6, n_txt)]).astype(np.int32)
        w.add_columns(
            x,
            np.full(n_img + n_txt, i),
            np.r_[np.arange(n_img), np.arange(1, n_txt + 1)],
            {"modality": np.r_[np.zeros(n_img), np.ones(n_txt)].astype(np.int8), "token_id": tid},
        )
        w.mark_images_done(i + 1)
    w.close()
    atomic_write_json(
        store / "images.json",
        {
            "kind": "folder",
            "root": str(root / "world"),
            "split": "train",
            "items": [f"c/{i}.png" for i in range(12)],
        },
    )
    atomic_write_json(store / "tokens.json", vocab)
    sae = build(SAEConfig(arch="topk", d_in=8, d_sae=16, k=4), seed=0)
    save(sae, root / "sae")
    return root


def test_cli_writes_shared_json_that_matches_the_functions(mixed, capsys):
    from vsae.sae import load
    from vsae.store import ActivationStore
    from vsae.store.columns import read_column

    out = mixed / "ev"
    main(
        [
            "eval",
            "shared",
            "--acts",
            str(mixed / "store"),
            "--sae",
            str(mixed / "sae"),
            "--out",
            str(out),
            "--top-k",
            "3",
            "--quiet",
        ]
    )
    res = json.loads((out / "shared.json").read_text())
    assert (out / "shared_ratio.png").stat().st_size > 1000
    L = res["layers"]["resid.0"]
    for k in ("shared_fraction", "ratio_histogram", "agreement", "random_agreement"):
        assert k in L
    s = ActivationStore.open(mixed / "store")
    mod = read_column(s, "modality")
    with torch.no_grad():
        z = load(mixed / "sae").encode(s[:]).numpy()
    d_img, d_txt = (z[mod == 0] > 0).mean(0), (z[mod == 1] > 0).mean(0)
    live = (d_img + d_txt) > 0
    r = d_img[live] / (d_img + d_txt)[live]
    shared = (r >= 0.2) & (r <= 0.8)
    assert L["n_live"] == live.sum() and L["n_shared"] == shared.sum()
    assert L["shared_fraction"] == pytest.approx(shared.mean())
    assert L["rows"] == {"image": 36, "text": 48}
    # ground truth of each scored shared latent, recomputed from its top rows
    vocab = {1: "a", 2: "red", 3: "blue", 4: "square", 5: "circle"}
    tid = read_column(s, "token_id")
    colour = {i: ["red", "blue"][i % 2] for i in range(12)}
    shape = {i: ["square", "circle"][(i // 2) % 2] for i in range(12)}
    for row in L["shared_latents"]:
        f = row["latent"]
        txt = sorted(np.flatnonzero((mod == 1) & (z[:, f] > 0)), key=lambda i: (-z[i, f], i))[:3]
        words = [vocab[int(tid[i])] for i in txt if vocab[int(tid[i])] != "a"]
        attr = "colour" if words[0] in ("red", "blue") else "shape"
        assert row["text_value"].startswith(attr)
        img = sorted(np.flatnonzero((mod == 0) & (z[:, f] > 0)), key=lambda i: (-z[i, f], i))[:3]
        vals = [(colour if attr == "colour" else shape)[int(s.image_index[i])] for i in img]
        best = max(vals, key=lambda v: (vals.count(v), -vals.index(v)))
        assert row["image_value"] == f"{attr}={best}"
    # selectivity: the same as `layer_selectivity` on the store's rows, split by modality here
    from vsae.eval.attributes import image_attributes
    from vsae.eval.selectivity import layer_selectivity

    table = image_attributes(mixed / "store", None, S.DEFAULT_ATTRIBUTES).values
    lex = S.word_lexicon({a: [v for v in col if v is not None] for a, col in table.items()})
    im, tx = mod == 0, mod == 1
    direct = layer_selectivity(
        z[im], s.image_index[im], z[tx], s.image_index[tx], s.token_index[tx],
        [vocab.get(int(t), "") for t in tid[tx]], table, lex,
    )  # fmt: skip
    for k in ("n_image_selective", "n_text_selective", "n_shared", "shared_latents", "units", "control"):
        assert L["selectivity"][k] == direct[k], k
    assert L["selectivity"]["units"] == {"images": 12, "text_rows": 48}
    assert L["n_scored"] == len(L["shared_latents"])
    if L["n_scored"]:
        assert L["agreement"] == pytest.approx(np.mean([r["agree"] for r in L["shared_latents"]]))


def _err(args, capsys) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["eval", "shared", *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    return err


def test_bad_inputs_are_one_line_errors(mixed, tmp_path, capsys):
    from vsae.sae import SAEConfig, build, save
    from vsae.store import StoreWriter

    out = ["--out", str(tmp_path / "o")]
    plain = StoreWriter.create_or_resume(tmp_path / "plain", d=8, dtype="float32")
    plain.add(torch.zeros(2, 8), np.zeros(2, np.int64), np.arange(2))
    plain.mark_images_done(1)
    plain.close()
    assert "vsae extract-mllm" in _err(
        ["--acts", str(tmp_path / "plain"), "--sae", str(mixed / "sae"), *out], capsys
    )
    assert "2 --acts but 1 --sae" in _err(
        ["--acts", str(mixed / "store"), "--acts", str(mixed / "store"), "--sae", str(mixed / "sae"), *out],
        capsys,
    )
    save(build(SAEConfig(arch="topk", d_in=4, d_sae=8, k=2)), tmp_path / "sae4")
    assert "width" in _err(["--acts", str(mixed / "store"), "--sae", str(tmp_path / "sae4"), *out], capsys)
    assert "does not exist" in _err(
        [
            "--acts",
            str(mixed / "store"),
            "--sae",
            str(mixed / "sae"),
            *out,
            "--attributes",
            str(tmp_path / "nope.json"),
        ],
        capsys,
    )
