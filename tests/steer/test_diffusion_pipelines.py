"""`vsae steer diffusion` on SDXL, SD3 and FLUX (issue 27): tiny random pipelines built from configs,
an SAE on one of their text encoders (the tower and hook from its provenance), steered through the
CLI. The steered images differ from the unsteered ones, an empty edit (scale by 1) leaves them
bit-identical, the parts a run without a judge cannot measure are listed in results.json, and a
wrong tower or hook is a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import vsae.sae
from vsae.models.tiny_pipelines import build_tiny_pipeline

# (pipeline, tower the SAE is on, hook the pipeline reads: SDXL / SD3 CLIPs the penultimate block)
CASES = [("sdxl", "text_2", "resid.0"), ("sd3", "text_3", "resid.1"), ("flux", "text", "resid.1")]
KIND = {"sdxl": "StableDiffusionXLPipeline", "sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}
SUB = {"text": "text_encoder", "text_2": "text_encoder_2", "text_3": "text_encoder_3"}


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipes")
    return {k: build_tiny_pipeline(k, root / k) for k, _, _ in CASES}


def _sae_on(pipe_dir, tower, hook, out):
    """A random top-k SAE on ``tower`` at ``hook``, its provenance recording both."""
    cfg = json.loads((pipe_dir / SUB[tower] / "config.json").read_text())
    d = int(cfg.get("d_model") or cfg["hidden_size"])
    prov = {"model": str(pipe_dir), "hook": hook, "tower": tower, "tokens": "all"}
    sae = vsae.sae.build(vsae.sae.SAEConfig(arch="topk", d_in=d, d_sae=4 * d, k=4, provenance=prov), seed=0)
    vsae.sae.save(sae, out)
    return out


def _run(pipe_dir, sae_dir, out, tmp_path, *extra):
    from vsae.cli import main

    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cat\na big blue house\n")
    main(["steer", "diffusion", "--pipeline", str(pipe_dir), "--sae", str(sae_dir), "--out", str(out),
          "--prompts", str(prompts), "--n-latents", "1", "--n-prompts", "2", "--steps", "2",
          "--size", "32", "--quiet", *extra])  # fmt: skip
    res = json.loads((out / "results.json").read_text())
    assert (out / "index.html").is_file()
    (ex,) = res["examples"]
    grid = np.asarray(Image.open(out / ex["png"]).convert("RGB"))
    h = (grid.shape[0] - 3 * 2) // 2  # two rows of images, 2-pixel padding (`image_grid`)
    return res, grid[2 : 2 + h], grid[4 + h : 4 + 2 * h]  # unsteered row, steered row


@pytest.mark.parametrize("kind,tower,hook", CASES)
def test_steer_diffusion_cli_on_multi_encoder_pipelines(kind, tower, hook, pipes, tmp_path):
    sae_dir = _sae_on(pipes[kind], tower, hook, tmp_path / "sae")
    res, top, bottom = _run(pipes[kind], sae_dir, tmp_path / "clamp", tmp_path, "--strength", "50")
    assert res["provenance"]["tower"] == tower and res["provenance"]["hook"] == hook  # from the SAE
    assert res["provenance"]["kind"] == KIND[kind]
    (row,) = res["steering"]["latents"]
    assert row["image_change"] > 0 and not np.array_equal(top, bottom)  # the edit changed the images
    assert set(res["skipped"]) == {"generation", "steering_rates", "discovery"}  # no judge, no --clip
    assert res["generation"]["accuracy"]["shape"] is None and "rates" not in row
    assert res["sampler"]["scheduler"] and res["sampler"]["guidance"] > 1  # the pipeline's own defaults
    page = (tmp_path / "clamp" / "index.html").read_text()
    assert "image change" in page and "Skipped generation" in page

    same, top, bottom = _run(
        pipes[kind], sae_dir, tmp_path / "scale1", tmp_path, "--op", "scale", "--strength", "1"
    )
    assert same["steering"]["latents"][0]["image_change"] == 0.0  # scale by 1: no latent changes ...
    assert np.array_equal(top, bottom)  # ... and the images are bit-identical


def _last_error(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tower", "text_2"], "trained on text encoder tower text but --tower is text_2"),
        (["--tower", "text_3"], "has no text encoder tower 'text_3'; valid towers: text, text_2"),
        (["--tower", "vision"], "has no text encoder tower 'vision'"),
        (["--hook", "nonsense"], "unknown hook"),
        (["--judge", "world"], "leave out --judge"),
    ],
)
def test_wrong_tower_or_hook_is_one_line_error(extra, message, pipes, tmp_path, capsys):
    sae_dir = _sae_on(pipes["flux"], "text", "resid.1", tmp_path / "sae")
    with pytest.raises(SystemExit) as e:
        _run(pipes["flux"], sae_dir, tmp_path / "o", tmp_path, *extra)
    assert e.value.code == 2
    last = _last_error(capsys)
    assert last.startswith("error: ") and message in last
    assert not (tmp_path / "o" / "results.json").exists()


def test_tower_on_a_one_encoder_pipeline_is_one_line_error(tmp_path, capsys):
    from vsae.world.diffusion.t2i_tiny import build_tiny_sd_pipeline

    sd = build_tiny_sd_pipeline(tmp_path / "sd")
    sae_dir = _sae_on(sd, "text", "resid.-1", tmp_path / "sae")
    with pytest.raises(SystemExit) as e:
        _run(sd, sae_dir, tmp_path / "o", tmp_path, "--tower", "text_2")
    assert e.value.code == 2 and "has one text encoder" in _last_error(capsys)


def test_clip_names_the_change_without_a_judge(pipes, tmp_path):
    from vsae.models.tiny_models import build_tiny

    clip = build_tiny("clip", tmp_path / "clip")
    sae_dir = _sae_on(pipes["sdxl"], "text_2", "resid.0", tmp_path / "sae")
    res, _, _ = _run(pipes["sdxl"], sae_dir, tmp_path / "o", tmp_path, "--clip", str(clip),
                     "--vocabulary", "red,blue,cat", "--discovery-latents", "2", "--discovery-prompts", "2")  # fmt: skip
    d = res["discovery"]
    assert d["n_latents"] == 2 and {r["name"] for r in d["latents"]} <= {"red", "blue", "cat"}
    assert (
        d["agreement"] is None
        and "discovery_agreement" in res["skipped"]
        and "discovery" not in res["skipped"]
    )
