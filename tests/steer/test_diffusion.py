"""Diffusion steering through text-encoder SAE latents: the splice in generation, the scores and
discovery against direct implementations, the CLI and its bad inputs (tiny random pipelines)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vsae.errors import VsaeError
from vsae.steer import LatentEdit
from vsae.steer.diffusion_pipeline import SamplerConfig, encode_prompts, generate, load_pipe
from vsae.train.recipe import TrainRecipe

PROMPTS = ["a small red star on the left of a dark striped background", "a blue square", "a green cross"]
FAST = SamplerConfig(steps=3, guidance=3.0, seed=0, batch_size=4)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    from vsae.world.diffusion.judge import fit_judge
    from vsae.world.diffusion.t2i_tiny import build_tiny_world_pipeline

    d = build_tiny_world_pipeline(tmp_path_factory.mktemp("tw"))
    fit_judge(n=300).save(d / "judge.safetensors")  # (the shipped model ships its judge)
    return d


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    from vsae.world.diffusion.t2i_tiny import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))


@pytest.fixture(scope="module")
def text_sae(world_dir, tmp_path_factory):
    from vsae.world.diffusion.text_sae import TextSAEConfig, train_text_sae

    cfg = TextSAEConfig(
        n_captions=300, recipe=TrainRecipe(steps=30, batch_size=64, lr=1e-3), expansion=4, k=4
    )
    return train_text_sae(world_dir, tmp_path_factory.mktemp("sae"), cfg, progress=False)


@pytest.fixture(scope="module")
def sae(text_sae):
    import vsae.sae

    return vsae.sae.load(text_sae)


@pytest.mark.parametrize("which", ["world", "sd"])
def test_no_edit_is_bit_identical_to_plain_generation(which, world_dir, sd_dir, sae):
    pipe = load_pipe(world_dir if which == "world" else sd_dir)
    plain = generate(pipe, PROMPTS, FAST)
    assert plain.dtype == np.uint8 and plain.shape == (3, pipe.image_size, pipe.image_size, 3)
    assert np.array_equal(plain, generate(pipe, PROMPTS, FAST))  # same seed -> same images
    spliced = generate(pipe, PROMPTS, FAST, sae=sae, hook="resid.-1", edits=[])
    assert np.array_equal(plain, spliced)
    # an edit that changes nothing (scale by 1) also leaves the images bit-identical
    same = generate(pipe, PROMPTS, FAST, sae=sae, hook="resid.-1", edits=[LatentEdit(0, "scale", 1.0)])
    assert np.array_equal(plain, same)
    other_seed = generate(pipe, PROMPTS, SamplerConfig(steps=3, seed=1, batch_size=4))
    assert not np.array_equal(plain, other_seed)


def test_ancestral_sampling_is_seeded_per_image_and_unset_settings_are_the_pipelines(world_dir):
    from dataclasses import replace

    pipe = load_pipe(world_dir)
    meta = json.loads((world_dir / "vsae_diffusion.json").read_text())
    assert (pipe.guidance, pipe.eta) == (meta["sampler_guidance"], meta["sampler_eta"])
    one = replace(FAST, batch_size=1, eta=1.0, guidance=2.0)
    a = generate(pipe, PROMPTS, one)
    assert np.array_equal(a[:2], generate(pipe, PROMPTS[:2], one))  # image i's noise: (seed, i) only
    assert np.array_equal(a, generate(pipe, PROMPTS, one))
    assert not np.array_equal(a, generate(pipe, PROMPTS, replace(one, eta=0.0)))
    assert not np.array_equal(a, generate(pipe, PROMPTS, replace(one, seed=1)))
    # unset guidance / eta: the pipeline's own
    pipe.guidance, pipe.eta = 2.0, 1.0
    assert np.array_equal(a, generate(pipe, PROMPTS, replace(one, eta=None, guidance=None)))
    sd = load_pipe(world_dir)
    sd.guidance, sd.eta = 2.0, 0.0
    assert np.array_equal(
        generate(sd, PROMPTS, replace(one, eta=None, guidance=None)),
        generate(sd, PROMPTS, replace(one, eta=0.0)),
    )


def test_edit_changes_only_the_edited_tokens_and_the_images(world_dir, sae):
    from vsae.steer.intervention import intervene

    pipe = load_pipe(world_dir)
    f = 0
    base, mask = encode_prompts(pipe, PROMPTS)
    edit = LatentEdit(f, "clamp", 50.0, tokens=(2,))
    with intervene(pipe.text, "resid.-1", sae, [edit]):
        edited, _ = encode_prompts(pipe, PROMPTS)
    changed_BT = (edited - base).abs().amax(-1) > 0
    assert changed_BT[:, 2].all()  # the edited position changes in every prompt ...
    changed_BT[:, 2] = False
    assert not changed_BT.any()  # ... and nothing else (last block + per-token final layer norm)
    plain = generate(pipe, PROMPTS, FAST)
    steered = generate(pipe, PROMPTS, FAST, sae=sae, hook="resid.-1", edits=[LatentEdit(f, "clamp", 50.0)])
    assert not np.array_equal(plain, steered)
    assert mask.sum() < mask.numel()  # prompts are padded; the mask reaches the UNet


def test_edit_applies_to_the_conditional_encoding_only(world_dir, sae):
    pipe = load_pipe(world_dir)
    block = pipe.text.blocks[-1]
    seen = []  # hooks on the block at each text-encoder call (the splice's + this one)
    h = block.register_forward_hook(lambda m, a, o: seen.append(len(m._forward_hooks)))
    try:
        generate(pipe, PROMPTS, FAST, sae=sae, hook="resid.-1", edits=[LatentEdit(1, "add", 5.0)])
    finally:
        h.remove()
    assert seen == [2, 1]  # conditional prompts with the splice, then "" without it
    seen.clear()
    h = block.register_forward_hook(lambda m, a, o: seen.append(len(m._forward_hooks)))
    try:  # without guidance the unconditional prompt is never encoded
        generate(pipe, PROMPTS, SamplerConfig(steps=2, guidance=1.0), sae=sae, hook="resid.-1", edits=[])
    finally:
        h.remove()
    assert seen == [2]


def test_bad_inputs_are_one_line_errors(world_dir, sae):
    pipe = load_pipe(world_dir)
    with pytest.raises(VsaeError, match="prompt list is empty"):
        generate(pipe, [], FAST)
    with pytest.raises(VsaeError, match="out of range"):
        generate(pipe, PROMPTS, FAST, sae=sae, hook="resid.7", edits=[])
    with pytest.raises(VsaeError, match="unknown hook"):
        generate(pipe, PROMPTS, FAST, sae=sae, hook="block7", edits=[])
    from tests.steer.conftest import make_sae

    with pytest.raises(VsaeError, match="d_in"):
        generate(
            pipe, PROMPTS, FAST, sae=make_sae(d_in=16, d_sae=32, k=2), hook="resid.-1", edits=[LatentEdit(0)]
        )
    with pytest.raises(VsaeError, match="cannot load diffusion pipeline"):
        load_pipe(world_dir.parent / "_text")


def test_steering_rates_match_a_direct_computation():
    from vsae.experiments.diffusion_steering.scoring import steering_rates

    rng = np.random.default_rng(0)
    n = 40
    truth = {"shape": rng.integers(0, 6, n), "colour": rng.integers(0, 8, n), "size": rng.integers(0, 3, n)}
    ps = {a: np.where(rng.random(n) < 0.7, v, rng.integers(0, 3, n)) for a, v in truth.items()}
    pu = {a: np.where(rng.random(n) < 0.9, v, rng.integers(0, 3, n)) for a, v in truth.items()}
    ps["colour"] = np.where(rng.random(n) < 0.6, 2, ps["colour"])
    r = steering_rates(ps, pu, truth, "colour", 2)
    assert r.target_steered == pytest.approx(sum(ps["colour"][i] == 2 for i in range(n)) / n)
    assert r.target_baseline == pytest.approx(sum(pu["colour"][i] == 2 for i in range(n)) / n)
    direct = np.mean([sum(ps[a][i] == truth[a][i] for i in range(n)) / n for a in ("shape", "size")])
    assert r.preserved == pytest.approx(direct)
    assert r.target_steered_drawn is None and "target_steered_drawn" not in r.to_json()
    ds, du = rng.random(n) < 0.5, rng.random(n) < 0.8
    g = steering_rates(ps, pu, truth, "colour", 2, ds, du)
    assert g.target_steered_drawn == pytest.approx(sum(ps["colour"][i] == 2 and ds[i] for i in range(n)) / n)
    assert g.target_baseline_drawn == pytest.approx(sum(pu["colour"][i] == 2 and du[i] for i in range(n)) / n)
    assert g.target_steered_drawn < g.target_steered  # images without an object no longer count
    assert (g.drawn_steered, g.drawn_baseline) == (pytest.approx(ds.mean()), pytest.approx(du.mean()))


def test_meets_target_counts_drawn_images_where_known():
    from dataclasses import replace

    from vsae.experiments.diffusion_steering.diffusion_result import SteeringRates
    from vsae.experiments.diffusion_steering.scoring import meets_target

    assert meets_target(SteeringRates(0.6, 0.2, 1.0, 1.0))
    assert not meets_target(SteeringRates(0.6, 0.31, 1.0, 1.0))
    # judged 0.8 but most of those images are noise: 0.3 of them still draw an object
    row = SteeringRates(0.8, 0.1, 1.0, 1.0, target_steered_drawn=0.3, target_baseline_drawn=0.1)
    assert not meets_target(row)
    assert meets_target(replace(row, target_steered_drawn=0.5))


def test_drawn_tells_objects_from_noise():
    from vsae.world.diffusion.silhouette import DRAWN_IOU, drawn, read_shapes
    from vsae.world.generate import generate as world_images

    real = world_images("test", 40, seed=3).images_NHWC
    noise = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    assert drawn(real).mean() >= 0.95 and drawn(noise).mean() <= 0.05
    assert np.array_equal(drawn(noise), read_shapes(noise)[1] >= DRAWN_IOU)


def test_discovery_matches_a_direct_computation():
    from vsae.experiments.diffusion_steering import discovery as dd
    from vsae.world.diffusion.judge import WORLD_ATTRIBUTES, world_vocabulary

    g = torch.Generator().manual_seed(0)
    words = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    u = torch.nn.functional.normalize(torch.randn(6, 8, generator=g), dim=-1)
    s = torch.nn.functional.normalize(u + 0.8 * words[3], dim=-1)  # steered toward word 3
    w, rise = dd.discover(s, u, words)
    direct = [
        np.mean([float(s[i] @ words[j]) for i in range(6)])
        - np.mean([float(u[i] @ words[j]) for i in range(6)])
        for j in range(5)
    ]
    np.testing.assert_allclose(rise, direct, atol=1e-6)
    assert w == int(np.argmax(direct)) == 3
    vocab = world_vocabulary()
    assert len(vocab) == 6 + 8 + 3 + 2 and vocab[0].attribute == "shape"
    pu = {a: np.zeros(4, np.int64) for a in WORLD_ATTRIBUTES}
    ps = dict(pu, colour=np.array([2, 2, 2, 0]))
    ch = dd.truth_change(ps, pu, vocab)
    red = next(i for i, v in enumerate(vocab) if v.attribute == "colour" and v.value == 2)
    first_colour = next(i for i, v in enumerate(vocab) if v.attribute == "colour" and v.value == 0)
    assert ch[red] == pytest.approx(0.75) and ch[first_colour] == pytest.approx(-0.75)
    assert dd.truth_name(ch, 0.5) == red and dd.truth_name(ch, 0.8) is None
    assert dd.agreement([1, 2, 3, 4], [1, None, 0, 4]) == (pytest.approx(2 / 3), 3)
    assert dd.random_agreement([1, None, 0, 4], 5, seed=0, draws=4000) == pytest.approx(0.2, abs=0.02)


def test_latent_stats_match_a_direct_computation(world_dir, sae):
    from vsae.steer.diffusion_latents import latent_stats, text_token_rows

    pipe = load_pipe(world_dir)
    caps = ["a red star", "a red square on the left", "a blue star"]
    st = latent_stats(pipe.text, pipe.tokenizer, sae, "resid.-1", caps)
    x, ci, ti = text_token_rows(pipe.text, "resid.-1", caps)
    assert len(x) == sum(len(c.split()) + 2 for c in caps)  # BOS + words + EOS, no padding
    z = sae.encode(x).detach().numpy()
    toks = [pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer(c)["input_ids"]) for c in caps]
    words = [toks[c][t].lower() for c, t in zip(ci, ti)]
    for f in st.live[:10]:
        mass = {}
        for w, v in zip(words, z[:, f]):
            mass[w] = mass.get(w, 0.0) + float(v)
        best = max(mass, key=mass.get)
        assert st.top_word[f] == best
        assert st.top_share[f] == pytest.approx(mass[best] / sum(mass.values()), rel=1e-5)
        assert st.max_act[f] == pytest.approx(z[:, f].max())


def test_cli_writes_results_and_page(world_dir, text_sae, tmp_path, capsys):
    from vsae.cli import main

    out = tmp_path / "o"
    args = ["steer", "diffusion", "--pipeline", str(world_dir), "--sae", str(text_sae), "--out", str(out),
            "--latents", "0,1", "--n-prompts", "2", "--n-eval", "4", "--discovery-latents", "3",
            "--discovery-prompts", "2", "--steps", "2", "--sweep", "8", "--quiet"]  # fmt: skip
    main(args)
    res = json.loads((out / "results.json").read_text())
    for key in ("shape", "colour"):
        assert 0.0 <= res["generation"]["accuracy"][key] <= 1.0
    assert set(res["steering"]["target_rate"]) == {"steered", "baseline", "steered_drawn", "baseline_drawn"}
    assert "preserved_rate" in res["steering"]
    assert [r["latent"] for r in res["steering"]["latents"]] == [0, 1]
    meta = json.loads((world_dir / "vsae_diffusion.json").read_text())
    assert res["sampler"] == {"guidance": meta["sampler_guidance"], "eta": meta["sampler_eta"], "steps": 2}
    # the unsteered images' silhouette IoU, directly: latents given without an attribute steer
    # the first n_prompts of the pool (held-out captions of seed + 2)
    from vsae.world.diffusion.generation_quality import heldout_prompts
    from vsae.world.diffusion.silhouette import read_shapes

    pool, _ = heldout_prompts(64, 2)
    plain = generate(load_pipe(world_dir), pool[:2], SamplerConfig(steps=2, seed=0))
    for r in res["steering"]["latents"]:
        assert r["iou_baseline"] == pytest.approx(float(read_shapes(plain)[1].mean()))
        assert 0.0 <= r["iou_steered"] <= 1.0
    sil = res["generation"]["silhouette"]
    assert 0.0 <= sil["shape"] <= 1.0 and 0.0 <= sil["mean_iou"] <= 1.0
    assert res["discovery"]["n_latents"] == 3
    assert "agreement" in res["discovery"] and "random_agreement" in res["discovery"]
    html = (out / "index.html").read_text()
    assert "unsteered" in html and html.count("<img") >= 2
    assert "target rate" in capsys.readouterr().out


def test_cli_runs_a_stable_diffusion_pipeline(sd_dir, world_dir, text_sae, tmp_path):
    from vsae.cli import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("a red star\na blue square\n")
    out = tmp_path / "sd"
    main(["steer", "diffusion", "--pipeline", str(sd_dir), "--sae", str(text_sae), "--out", str(out),
          "--prompts", str(prompts), "--latents", "2", "--n-prompts", "2", "--discovery-latents", "2",
          "--discovery-prompts", "2", "--steps", "2", "--clip", str(_tiny_clip(tmp_path)),
          "--vocabulary", "red,blue,star", "--quiet"])  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert res["generation"]["accuracy"]["shape"] is None  # no ground truth outside the world
    assert res["steering"]["latents"][0]["latent"] == 2
    assert res["discovery"]["agreement"] is None and res["discovery"]["n_latents"] == 2
    assert res["discovery"]["latents"][0]["name"] in ("red", "blue", "star")


def _tiny_clip(tmp_path):
    from vsae.models.tiny_models import build_tiny

    return build_tiny("clip", tmp_path / "clip")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--hook", "resid.5"], "out of range"),
        (["--hook", "nonsense"], "unknown hook"),
        (["--prompts", "EMPTY"], "prompt list is empty"),
        (["--sae", "WIDE", "--hook", "resid.-1"], "d_in"),
        (["--latents", "9999"], "out of range"),
    ],
)
def test_cli_bad_inputs(extra, message, world_dir, text_sae, tmp_path, capsys):
    from tests.steer.conftest import make_sae

    from vsae.cli import main

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    wide = tmp_path / "wide"
    import vsae.sae

    vsae.sae.save(make_sae(d_in=16, d_sae=32, k=2), wide)
    extra = [str(empty) if e == "EMPTY" else str(wide) if e == "WIDE" else e for e in extra]
    args = ["steer", "diffusion", "--pipeline", str(world_dir), "--sae", str(text_sae), "--out", str(tmp_path / "o"),
            "--n-eval", "0", "--steps", "1", "--quiet", *extra]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # (earlier lines: model-loading progress bars in-process)
    assert last.startswith("error: ") and message in last


def test_word_tokens_edit_only_the_prompts_attribute_word(world_dir, sae):
    """`--tokens word` (issue 23): the mask marks each prompt's own word, and an edit through it
    changes those positions of the text encoding only."""
    from types import SimpleNamespace

    from vsae.experiments.diffusion_steering.diffusion_run import Setup
    from vsae.steer.intervention import intervene

    pipe = load_pipe(world_dir)
    prompts = ["a small red star", "a large blue upright square on the left"]
    mask = Setup.word_tokens(SimpleNamespace(pipe=pipe), prompts, ["red", "large"])  # type: ignore[arg-type]
    toks = [pipe.tokenizer.convert_ids_to_tokens(pipe.tokenizer(p)["input_ids"]) for p in prompts]
    assert (
        [int(i) for i in mask[0].nonzero()]
        == [t for t, w in enumerate(toks[0]) if w.startswith("red")]
        == [3]
    )
    assert [int(i) for i in mask[1].nonzero()] == [2] and mask.shape[1] == pipe.tokenizer.model_max_length
    base, _ = encode_prompts(pipe, prompts)
    with intervene(pipe.text, "resid.-1", sae, [LatentEdit(0, "clamp", 50.0, tokens=mask)]):
        edited, _ = encode_prompts(pipe, prompts)
    assert torch.equal((edited - base).abs().amax(-1) > 0, mask)
