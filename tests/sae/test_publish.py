"""Publishing (issue 25, point 3): the model card and the folder `vsae push` / `SAE.push_to_hub`
upload, tested offline: huggingface_hub's HfApi.create_repo / upload_folder are replaced by
recorders that list the files they would send."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import vsae
from vsae.cli import main
from vsae.sae import SAEConfig
from vsae.sae.publish import model_card
from vsae.sae.saelens import load_saelens
from vsae.store import StoreWriter

PROV = {
    "model": "openai/clip-vit-base-patch32",
    "revision": "3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268",
    "hook": "resid.5",
    "hook_module": "vision_model.encoder.layers.5",
    "tokens": "patches",
    "data": "folder:/data/imagenet/val",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("run")
    rows = torch.randn(2048, 8, generator=torch.Generator().manual_seed(0))
    w = StoreWriter.create_or_resume(tmp / "acts", d=8, dtype="float32", provenance=PROV)
    w.add(rows, np.arange(2048, dtype=np.int64), np.zeros(2048, dtype=np.int64))
    w.mark_images_done(2048)
    w.close()
    cfg = SAEConfig(arch="topk", d_in=8, d_sae=32, k=4)
    tcfg = vsae.TrainConfig(steps=20, batch_size=64, log_every=10, val_rows=256)
    (d,) = vsae.train(tmp / "acts", cfg, tcfg, tmp / "out", val=tmp / "acts", progress=False)
    (d / "ms.json").write_text(json.dumps({"sae": {"mean": 0.4321, "std": 0.1, "n_scored": 30}}))
    return d


class Recorder:
    calls: list[dict] = []

    def __init__(self, token=None):
        pass

    def create_repo(self, repo_id, private=False, exist_ok=False):
        Recorder.calls.append({"create": repo_id, "private": private})

    def upload_folder(self, folder_path, repo_id, revision=None, commit_message=""):
        root = Path(folder_path)
        files = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
        Recorder.calls.append({"repo_id": repo_id, "revision": revision, "files": files})
        return type("Info", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    Recorder.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", Recorder)
    return Recorder


def test_model_card_states_what_the_sae_is(run):
    meta = json.loads((run / "config.json").read_text())
    card = model_card(run, "me/clip-sae")
    for field, value in (
        ("model", PROV["model"]),
        ("model revision", PROV["revision"]),
        ("hook (vsae)", "resid.5"),
        ("hook module path", PROV["hook_module"]),
        ("tokens", "patches"),
        ("data", PROV["data"]),
        ("architecture", "topk"),
        ("width (d_sae)", "32"),
        ("k", "4"),
        ("training rows", str(20 * 64)),
        ("FVU", f"{meta['val']['fvu']:.4g}"),
        ("L0", f"{meta['val']['l0']:.4g}"),
        ("dead fraction", f"{meta['val']['dead_frac']:.4g}"),
        ("MS (mean, Pach et al.)", "0.4321"),
    ):
        assert f"| {field} | {value} |" in card, field
    assert 'vsae.SAE.from_pretrained("me/clip-sae")' in card and "sae_lens" in card


def test_cli_push_uploads_the_run_the_card_and_a_saelens_copy(run, hub, capsys):
    main(["push", str(run), "me/clip-sae", "--private"])
    assert "https://huggingface.co/me/clip-sae/commit/abc" in capsys.readouterr().out
    create, up = hub.calls
    assert create == {"create": "me/clip-sae", "private": True} and up["repo_id"] == "me/clip-sae"
    files = up["files"]
    assert set(files) == {
        "README.md",
        "config.json",
        "sae.safetensors",
        "log.jsonl",
        "ms.json",
        "saelens/cfg.json",
        "saelens/sae_weights.safetensors",
    }
    assert files["sae.safetensors"] == (run / "sae.safetensors").read_bytes()
    assert files["README.md"].decode() == model_card(run, "me/clip-sae")
    assert json.loads(files["saelens/cfg.json"])["metadata"]["hook_name"] == PROV["hook_module"]


def test_push_to_hub_of_an_sae_and_the_saelens_copy_loads(run, hub, tmp_path):
    sae = vsae.sae.load(run)
    url = sae.push_to_hub("me/other")
    assert url.endswith("/commit/abc")
    files = hub.calls[-1]["files"]
    assert "| MS (mean, Pach et al.) | not measured |" in files["README.md"].decode()
    (tmp_path / "sl").mkdir()
    for name in ("cfg.json", "sae_weights.safetensors"):
        (tmp_path / "sl" / name).write_bytes(files[f"saelens/{name}"])
    x = torch.randn(10, 8)
    with torch.no_grad():
        np.testing.assert_allclose(load_saelens(tmp_path / "sl").encode(x), sae.encode(x), atol=1e-6)


def test_push_dry_run_and_a_missing_run(run, tmp_path, capsys):
    main(["push", str(run), "me/x", "--dry-run", str(tmp_path / "up")])
    assert (tmp_path / "up" / "README.md").is_file() and (tmp_path / "up" / "saelens" / "cfg.json").is_file()
    with pytest.raises(SystemExit) as e:
        main(["push", str(tmp_path / "nope"), "me/x"])
    assert e.value.code == 2 and "does not exist" in capsys.readouterr().err
