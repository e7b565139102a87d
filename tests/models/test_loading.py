"""Loading by local directory and by hub id (from an offline HF cache), provenance, errors."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from vsae.errors import VsaeError
from vsae.models import load
from vsae.models.tiny_models import build_tiny


def test_local_dir_provenance_hashes_weights(tmp_path):
    a = build_tiny("vit", tmp_path / "a", seed=0)
    b = build_tiny("vit", tmp_path / "b", seed=1)
    pa, pb = load(str(a)).provenance, load(str(b)).provenance
    assert pa["family"] == "vit" and pa["class"] == "ViTModel" and pa["model"] == str(a.resolve())
    assert len(pa["weights_sha256"]) == 64 and pa["weights_sha256"] != pb["weights_sha256"]
    assert load(str(a)).provenance["weights_sha256"] == pa["weights_sha256"]


def test_architecture_from_config_picks_projection_class(tmp_path):
    assert load(str(build_tiny("clip_vision", tmp_path / "p"))).provenance["class"] == "CLIPVisionModel"
    lm = load(str(build_tiny("clip_vision_proj", tmp_path / "q")))
    assert lm.provenance["class"] == "CLIPVisionModelWithProjection" and lm.embed_fields[0] == "image_embeds"


def test_default_preprocessing_without_processor_config(tmp_path):
    d = build_tiny("dinov2", tmp_path / "d")
    assert load(str(d)).provenance.get("preprocess") is None  # the saved processor is used
    (d / "preprocessor_config.json").unlink()
    lm = load(str(d))
    assert (
        lm.provenance["preprocess"].startswith("default CLIPImageProcessor")
        and "(32 px)" in lm.provenance["preprocess"]
    )
    assert tuple(lm.preprocess.processor.image_mean) == (0.485, 0.456, 0.406)
    assert lm.dummy_inputs()["pixel_values"].shape == (1, 3, 32, 32)


def test_errors(tmp_path):
    with pytest.raises(VsaeError, match="cannot load model"):
        load(str(tmp_path / "nope"))
    d = tmp_path / "bert"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(VsaeError, match="unsupported model_type 'bert'"):
        load(str(d))
    with pytest.raises(VsaeError, match="tower 'language' not available"):
        load(str(build_tiny("dinov2", tmp_path / "dino")), tower="language")


def test_hub_id_from_offline_cache_records_revision(tmp_path):
    """The real from_pretrained(hub_id) path, served by a Hugging Face cache laid out on disk."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--vsae-test--tiny-dino"
    snap = repo / "snapshots" / rev
    build_tiny("dinov2", tmp_path / "src")
    shutil.copytree(tmp_path / "src", snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    code = (
        "import json; from vsae.models import load; print(json.dumps(load('vsae-test/tiny-dino').provenance))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    prov = json.loads(out.stdout.strip().splitlines()[-1])
    assert prov == {
        "model": "vsae-test/tiny-dino",
        "family": "dinov2",
        "tower": "vision",
        "class": "Dinov2Model",
        "revision": rev,
    }
