"""`vsae extract --model <text-to-image pipeline>` extracts its CLIP text encoder (the
``text_encoder/`` and ``tokenizer/`` sub-folders) as the ``clip_text`` family."""

import pytest
import torch

from vsae.cli import main as cli_main
from vsae.errors import VsaeError
from vsae.models import capture, load
from vsae.models.hf import weights_sha256
from vsae.store import ActivationStore

PROMPTS = ["a red star", "a big blue circle on a green background", "square"]


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory):
    from vsae.world.diffusion.t2i_tiny import build_tiny_sd_pipeline

    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))


def _run(args):
    try:
        cli_main(args)
    except SystemExit as e:
        assert e.code in (0, None), e.code


def test_extract_a_pipelines_text_encoder_through_the_cli(tmp_path, sd_dir):
    from transformers import AutoTokenizer, CLIPTextModel

    assert (sd_dir / "model_index.json").is_file() and not (sd_dir / "config.json").exists()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(p + "\n" for p in PROMPTS))
    out = tmp_path / "s"
    _run(
        ["extract", "--model", str(sd_dir), "--data", str(prompts), "--out", str(out)]
        + ["--hook", "resid.-1", "--hook", "embed", "--tokens", "all", "--dtype", "float32", "--quiet"]
    )
    enc = CLIPTextModel.from_pretrained(sd_dir, subfolder="text_encoder").eval()
    tok = AutoTokenizer.from_pretrained(sd_dir, subfolder="tokenizer")
    want_tokens, want_embed = [], []
    with torch.no_grad():
        for p in PROMPTS:  # one prompt at a time: no padding
            o = enc(**tok([p], return_tensors="pt"), output_hidden_states=True)
            want_tokens.append(o.hidden_states[-1][0])
            want_embed.append(o.pooler_output[0])
    s = ActivationStore.open(out / "resid.1")  # the canonical name of resid.-1
    torch.testing.assert_close(s[0 : len(s)], torch.cat(want_tokens), atol=1e-5, rtol=1e-4)
    e = ActivationStore.open(out / "embed")
    torch.testing.assert_close(e[0 : len(e)], torch.stack(want_embed), atol=1e-5, rtol=1e-4)
    prov = s.manifest["provenance"]
    assert prov["family"] == "clip_text" and prov["subfolder"] == "text_encoder"
    assert prov["weights_sha256"] == weights_sha256(sd_dir / "text_encoder")


def test_shipped_world_pipeline_and_tower_errors(sd_dir):
    from vsae.world.diffusion import shipped_diffusion_dir

    lm = load(str(shipped_diffusion_dir()))  # the world layout: unet/ and no model_index.json
    assert (lm.family, lm.tower, lm.modality, lm.num_layers) == ("clip_text", "text", "text", 2)
    with capture(lm, "resid.0") as cap:
        lm.run(lm.preprocess(["a red star"]))
    assert cap.output.shape[-1] == lm.model.config.hidden_size
    with pytest.raises(VsaeError, match="tower 'vision' not available for a diffusion pipeline"):
        load(str(sd_dir), tower="vision")


def test_hub_id_of_a_pipeline_from_the_offline_cache(tmp_path, sd_dir):
    """A hub repo with model_index.json (served by a Hugging Face cache laid out on disk) loads
    its text encoder, and records the snapshot's revision."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    rev = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--vsae-test--tiny-sd"
    shutil.copytree(sd_dir, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    code = "import json; from vsae.models import load; lm = load('vsae-test/tiny-sd'); print(json.dumps([lm.num_layers, lm.provenance]))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    n_layers, prov = json.loads(out.stdout.strip().splitlines()[-1])
    assert n_layers == 2
    assert prov == {
        "model": "vsae-test/tiny-sd",
        "family": "clip_text",
        "tower": "text",
        "class": "CLIPTextModel",
        "subfolder": "text_encoder",
        "revision": rev,
    }


ENCODERS = [("sdxl", "text", "CLIPTextModel"), ("sdxl", "text_2", "CLIPTextModelWithProjection"),
            ("sd3", "text_3", "T5EncoderModel"), ("flux", "text", "CLIPTextModel"),
            ("flux", "text_2", "T5EncoderModel")]  # fmt: skip


@pytest.fixture(scope="module")
def pipeline_dirs(tmp_path_factory):
    from vsae.models.tiny_pipelines import PIPELINE_KINDS, build_tiny_pipeline

    root = tmp_path_factory.mktemp("pipes")
    return {k: build_tiny_pipeline(k, root / k) for k in PIPELINE_KINDS}


@pytest.mark.parametrize("kind,tower,cls", ENCODERS)
def test_extract_each_text_encoder_of_sdxl_sd3_flux(tmp_path, pipeline_dirs, kind, tower, cls):
    """`--tower text|text_2|text_3` picks the encoder (the store says which); resid.0 and the
    attention / MLP contributions equal the encoder's own hidden states."""
    import transformers as T

    from vsae.models.families.pipeline_text import TOWERS

    d = pipeline_dirs[kind]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(p + "\n" for p in PROMPTS))
    out = tmp_path / "s"
    _run(
        ["extract", "--model", str(d), "--tower", tower, "--data", str(prompts), "--out", str(out)]
        + ["--hook", "resid.0", "--hook", "attn.1", "--hook", "mlp.1", "--hook", "resid.1"]
        + ["--tokens", "all", "--dtype", "float32", "--quiet"]
    )
    sub, tok_sub = TOWERS[tower]
    enc = getattr(T, cls).from_pretrained(d, subfolder=sub).eval()
    tok = T.AutoTokenizer.from_pretrained(d, subfolder=tok_sub)
    h0, delta = [], []
    with torch.no_grad():
        for p in PROMPTS:  # one prompt at a time: no padding
            hs = enc(**tok([p], return_tensors="pt"), output_hidden_states=True).hidden_states
            h0.append(hs[1][0])
            delta.append(hs[2][0] - hs[1][0] if cls != "T5EncoderModel" else None)
    s = ActivationStore.open(out / "resid.0")
    assert s.provenance["tower"] == tower and s.provenance["subfolder"] == sub
    assert s.provenance["class"] == cls
    torch.testing.assert_close(s[0 : len(s)], torch.cat(h0), atol=1e-5, rtol=1e-4)
    a, m = ActivationStore.open(out / "attn.1"), ActivationStore.open(out / "mlp.1")
    r1 = ActivationStore.open(out / "resid.1")
    # each block adds its attention and MLP outputs (T5 reports its last state after the final norm)
    torch.testing.assert_close(
        r1[0 : len(r1)] - s[0 : len(s)], a[0 : len(a)] + m[0 : len(m)], atol=1e-5, rtol=1e-4
    )
    if cls != "T5EncoderModel":
        torch.testing.assert_close(r1[0 : len(r1)] - s[0 : len(s)], torch.cat(delta), atol=1e-5, rtol=1e-4)


def test_a_tower_the_pipeline_lacks_is_a_one_line_error(pipeline_dirs):
    with pytest.raises(
        VsaeError, match="tower 'text_3' not available for a diffusion pipeline; valid: text, text_2"
    ):
        load(str(pipeline_dirs["flux"]), tower="text_3")
