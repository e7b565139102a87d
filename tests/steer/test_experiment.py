"""The steering experiment end to end: plumbing on random tiny models (fast), and the measured
steering effect on the shipped tiny LLaVA + steering SAE + world CLIP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import vsae.sae
from vsae.experiments.mllm_steering.mllm_config import SteerConfig
from vsae.experiments.mllm_steering.mllm_report import write_steering_index
from vsae.experiments.mllm_steering.mllm_run import run_steering
from vsae.steer.embed import ImageTextEmbedder
from vsae.steer.score import latent_embeddings, steering_score
from vsae.world.llava import LlavaArch, build_llava

from .conftest import make_sae


@pytest.fixture(scope="module")
def random_setup(tmp_path_factory):
    from transformers import CLIPImageProcessor, CLIPProcessor

    from vsae.models.tiny_models import build_tiny, tiny_tokenizer

    root = tmp_path_factory.mktemp("steer")
    model, processor = build_llava(None, LlavaArch(hidden=32, layers=1, heads=2, intermediate=64))
    model.save_pretrained(root / "llava")
    processor.save_pretrained(root / "llava")
    vsae.sae.save(make_sae(d_in=64, d_sae=256, k=8), root / "sae")
    clip = build_tiny("clip", root / "clip")
    CLIPProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tiny_tokenizer(),
    ).save_pretrained(clip)
    return root


def test_run_steering_plumbing(random_setup, tmp_path):
    root = random_setup
    cfg = SteerConfig(
        n_latents=2, n_images=3, n_hai_images=40, hai_k=4, blank_latents=2, max_new_tokens=2, value=50.0
    )
    res = run_steering(root / "llava", root / "sae", root / "clip", cfg, tmp_path / "out", progress=False)
    write_steering_index(tmp_path / "out", res.to_json())  # the page is the report section's
    for name in ("results.json", "index.html", "scores.png"):
        assert (tmp_path / "out" / name).is_file()
    page = (tmp_path / "out" / "index.html").read_text()
    assert "Answers per latent" in page and "One blank white image" in page and "data:image/png" in page
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(res.to_json()))  # the typed result is what was written
    assert list(on_disk) == [
        "method", "config", "llava", "sae", "similarity_encoder", "hai_pooling", "scale", "score", "latents",
        "test_images", "blank_image",
    ]  # fmt: skip
    assert on_disk["config"]["hook"] == "resid.2"  # vision_feature_layer -2 of a 4-block tower
    rows = on_disk["latents"]
    assert len(rows) == 2 and all(len(r["answers_steered"]) == 3 and len(r["top_images"]) == 4 for r in rows)
    assert res.blank_image is not None and len(res.blank_image.latents) == 2
    # The reported score is the score of the reported answers (recomputed independently).
    from vsae.steer.mllm import first_word

    sim = ImageTextEmbedder(root / "clip")
    from vsae.world import generate

    hai = generate("train", 40, seed=0)
    ids = [r.id for r in hai.records]
    top = np.array([[ids.index(i) for i in r["top_images"]] for r in rows])
    h = latent_embeddings(top, sim.images(hai.pil_images()))
    t = torch.stack([sim.texts([first_word(a) for a in r["answers_steered"]]) for r in rows])
    s = steering_score(h, t, sim.texts([first_word(a) for a in rows[0]["answers_baseline"]]))
    assert s.steered == pytest.approx(res.score.steered, abs=1e-6)
    assert s.baseline == pytest.approx(res.score.baseline, abs=1e-6)


def test_bad_inputs(random_setup, tmp_path):
    from vsae.errors import VsaeError

    root = random_setup
    vsae.sae.save(make_sae(d_in=32, d_sae=64, k=4), tmp_path / "small_sae")
    cfg = SteerConfig(n_latents=1, n_images=1, n_hai_images=8, hai_k=2, blank_latents=0)
    with pytest.raises(VsaeError, match="d_in=32"):
        run_steering(root / "llava", tmp_path / "small_sae", root / "clip", cfg, progress=False)
    with pytest.raises(VsaeError):
        SteerConfig(op="double")
    with pytest.raises(VsaeError, match="out of range"):
        run_steering(
            root / "llava",
            root / "sae",
            root / "clip",
            SteerConfig(latents=(999,), n_images=1, n_hai_images=8, hai_k=2, blank_latents=0),
            progress=False,
        )


def test_cli(random_setup, tmp_path, capsys):
    from vsae.cli import main

    root = random_setup
    args = [
        "steer",
        "mllm",
        "--llava",
        str(root / "llava"),
        "--sae",
        str(root / "sae"),
        "--sim-encoder",
        str(root / "clip"),
        "--out",
        str(tmp_path / "o"),
        "--latents",
        "3,5",
        "--n-images",
        "2",
        "--n-hai-images",
        "20",
        "--hai-k",
        "4",
        "--blank-latents",
        "0",
        "--max-new-tokens",
        "2",
        "--quiet",
    ]
    main(args)
    assert "steering score" in capsys.readouterr().out
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [r["latent"] for r in res["latents"]] == [3, 5] and "blank_image" not in res
    with pytest.raises(SystemExit) as e:
        main([*args[:-1], "--latents", "x,y"])
    assert e.value.code == 2
    assert "error: --latents" in capsys.readouterr().err


def test_shipped_tiny_llava_is_steered(tmp_path, capsys):
    """Measured: clamping a latent moves the one-word answers toward the latent's top images
    (cos(h_f, t) of the world CLIP) more often than away, and raises the score over baseline."""
    from vsae.world import shipped_clip_dir
    from vsae.world.llava import shipped_llava_dir, shipped_steering_sae_dir

    llava, sae_dir, clip = shipped_llava_dir(), shipped_steering_sae_dir(), shipped_clip_dir()
    cfg = SteerConfig(n_latents=10, n_images=12, n_hai_images=600, blank_latents=10)
    out = run_steering(llava, sae_dir, clip, cfg, tmp_path, progress=False).to_json()
    s, b = out["score"], out["blank_image"]["score"]
    with capsys.disabled():
        print(
            f"\nshipped tiny LLaVA, clamp {cfg.value:g} at {out['config']['hook']}, {cfg.n_latents} latents x "
            f"{cfg.n_images} test images: steering score {s['steered']:.4f} vs unsteered {s['baseline']:.4f}; "
            f"answers moved toward the latent {100 * s['moved_toward']:.1f}%, away {100 * s['moved_away']:.1f}%; "
            f"blank image: {b['steered']:.4f} vs {b['baseline']:.4f} "
            f"(toward {100 * b['moved_toward']:.0f}%, away {100 * b['moved_away']:.0f}%)"
        )
    assert s["moved_toward"] > s["moved_away"]
    assert s["steered"] > s["baseline"]


def test_config_choices_are_the_edit_ops():
    """The steering config's choices (which the CLI offers) are the ops and token sets LatentEdit takes."""
    from typing import get_args, get_type_hints

    from vsae.steer.edits import OPS, LatentEdit

    hints = get_type_hints(SteerConfig)
    assert get_args(hints["op"]) == OPS
    for tokens in get_args(hints["tokens"]):
        LatentEdit(0, "clamp", 1.0, tokens)  # each accepted
    assert SteerConfig(op="add", tokens="cls").op == "add"


def test_steering_holds_the_output_lock(tmp_path):
    """A second steering run into an output another run is writing is refused before any model loads
    (issue 22: every writing command holds `output_lock`)."""
    from vsae.errors import VsaeError
    from vsae.experiments.mllm_steering.mllm_run import run_steering
    from vsae.store.safe_io import output_lock

    out = tmp_path / "steer"
    with output_lock(out), pytest.raises(VsaeError, match="pid"):
        run_steering(tmp_path / "no-llava", tmp_path / "no-sae", tmp_path / "no-sim", out_dir=out)
    with pytest.raises(VsaeError) as e:  # unlocked: it gets as far as loading the (missing) model
        run_steering(tmp_path / "no-llava", tmp_path / "no-sae", tmp_path / "no-sim", out_dir=out)
    assert "pid" not in str(e.value)
    assert not (out / ".vsae.lock").exists()
