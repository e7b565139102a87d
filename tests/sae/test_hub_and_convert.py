"""Hub ids on every `--sae`, the known-SAE directory and `vsae convert` (issue 25, points 1-2).

The hub is a populated Hugging Face cache in tmp (the layout huggingface_hub documents:
models--org--repo/{refs/<name>, snapshots/<commit>/...}) used offline (HF_HUB_OFFLINE=1):
nothing is downloaded. The CLI runs in a subprocess so that HF_HUB_CACHE / HF_HUB_OFFLINE,
which huggingface_hub reads at import, take effect."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import vsae
from vsae.cli import main
from vsae.errors import VsaeError
from vsae.sae import SAE
from vsae.sae.pretrained import directory
from vsae.store import ActivationStore, StoreWriter

FIX = Path(__file__).parent / "peers" / "fixtures"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache(
    cache: Path, repo_id: str, files: dict[str, Path], ref: str = "main", commit: str = COMMIT
) -> None:
    root = cache / ("models--" + repo_id.replace("/", "--"))
    for rel, src in files.items():
        dst = root / "snapshots" / commit / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / ref).write_text(commit)


def _store(path: Path, x: torch.Tensor) -> None:
    w = StoreWriter.create_or_resume(path, d=x.shape[1], dtype="float32", provenance={"hook": "resid.5"})
    w.add(x, np.arange(len(x), dtype=np.int64), np.zeros(len(x), dtype=np.int64))
    w.mark_images_done(len(x))
    w.close()


def _vsae(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "vsae", *args], capture_output=True, text=True, env=env)


def test_cli_encode_takes_a_hub_id_from_the_cache_and_fails_in_one_line_without(tmp_path):
    ref = load_file(str(FIX / "dl_topk.expected.safetensors"))
    _store(tmp_path / "acts", ref["x"])
    sub = "topk/trainer_0"
    files = {f"{sub}/ae.pt": FIX / "dl_topk" / "ae.pt", f"{sub}/config.json": FIX / "dl_topk" / "config.json"}
    _cache(tmp_path / "cache", "someone/vision-saes", files)
    _cache(tmp_path / "cache", "someone/vision-saes", files, ref="v1", commit="f" * 40)
    for sae_id, extra in (
        (f"someone/vision-saes/{sub}", []),
        (f"someone/vision-saes/{sub}@v1", []),
        (f"someone/vision-saes/{sub}", ["--revision", "v1"]),
    ):
        out = tmp_path / f"z{len(list(tmp_path.iterdir()))}"
        r = _vsae(
            "encode",
            "--sae",
            sae_id,
            *extra,
            "--acts",
            str(tmp_path / "acts"),
            "--out",
            str(out),
            "--quiet",
            cache=tmp_path / "cache",
        )
        assert r.returncode == 0, r.stderr
        np.testing.assert_allclose(
            ActivationStore.open(out)[0 : len(ref["x"])].numpy(), ref["z"].numpy(), atol=1e-5
        )
    r = _vsae(
        "encode",
        "--sae",
        "someone/absent",
        "--acts",
        str(tmp_path / "acts"),
        "--out",
        str(tmp_path / "n"),
        cache=tmp_path / "cache",
    )
    err = r.stderr.strip()
    assert r.returncode == 2 and err.startswith("error:") and "\n" not in err
    assert "someone/absent" in err and str(tmp_path / "cache") in err


def test_from_pretrained_resolves_a_known_name_through_the_cache(tmp_path):
    known = directory()["saev/clip-b16-in1k-24k"]
    assert known.repo_id == "osunlp/SAE_CLIP_24K_ViT-B-16_IN1K" and known.format == "saev"
    _cache(tmp_path / "cache", known.repo_id, {"sae.pt": FIX / "saev" / "sae.pt"})
    sae = SAE.from_pretrained("saev/clip-b16-in1k-24k", cache_dir=tmp_path / "cache", local_files_only=True)
    ref = load_file(str(FIX / "saev.expected.safetensors"))
    with torch.no_grad():
        assert float((sae.encode(ref["x"]) - ref["z"]).abs().max()) <= 1e-5
    assert sae.cfg.provenance["known_name"] == "saev/clip-b16-in1k-24k"
    assert sae.cfg.provenance["model"] == known.model and sae.cfg.provenance["imported_from"] == "saev"
    with pytest.raises(VsaeError, match="neither a local directory nor in the Hugging Face cache"):
        SAE.from_pretrained("saev/dinov2-b14-in1k-24k", cache_dir=tmp_path / "cache", local_files_only=True)


def test_known_directory_entries_are_complete():
    for name, s in directory().items():
        assert "/" in name and s.repo_id.count("/") == 1, name
        assert s.format in vsae.sae.importers.importer_names(), name
        assert s.verified and "repo_id" in s.verified and s.verified_by, name


def test_sae_list_prints_the_directory(capsys):
    main(["sae", "list"])
    out = capsys.readouterr().out
    assert "osunlp/SAE_CLIP_24K_ViT-B-16_IN1K" in out and "pach-clip-l14-336/batchtopk-x8-resid22" in out
    main(["sae", "list", "--json"])
    assert set(json.loads(capsys.readouterr().out)) == set(directory())


def test_convert_writes_a_vsae_sae_with_the_source_recorded(tmp_path, capsys):
    main(["convert", str(FIX / "dl_jumprelu"), "--out", str(tmp_path / "c")])
    meta = json.loads((tmp_path / "c" / "config.json").read_text())
    src = meta["source"]
    assert src["format"] == "dictionary_learning"
    assert src["files"]["ae.pt"] == hashlib.sha256((FIX / "dl_jumprelu" / "ae.pt").read_bytes()).hexdigest()
    assert src["config"]["trainer"]["dict_class"] == "JumpReluAutoEncoder"
    sae = vsae.sae.load(tmp_path / "c")  # a plain vsae checkpoint now
    ref = load_file(str(FIX / "dl_jumprelu.expected.safetensors"))
    with torch.no_grad():
        assert float((sae.encode(ref["x"]) - ref["z"]).abs().max()) <= 1e-5
    with pytest.raises(SystemExit) as e:
        main(["convert", str(FIX / "dl_jumprelu"), "--out", str(tmp_path / "c")])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(tmp_path / "c"), "--out", str(tmp_path / "d")])
    assert "already a vsae SAE" in capsys.readouterr().err


def test_cli_eval_takes_a_hub_id_too(tmp_path):
    """`vsae eval` opens --sae through the same vsae.sae.load as encode: a hub id works there."""
    ref = load_file(str(FIX / "saev.expected.safetensors"))
    _store(tmp_path / "acts", ref["x"])
    _cache(tmp_path / "cache", "someone/saev-sae", {"sae.pt": FIX / "saev" / "sae.pt"})
    r = _vsae(
        "eval",
        "recon",
        "--acts",
        str(tmp_path / "acts"),
        "--sae",
        "someone/saev-sae",
        "--out",
        str(tmp_path / "ev"),
        cache=tmp_path / "cache",
    )
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "ev" / "recon.json").read_text())
    assert rep["sae"] == "someone/saev-sae"


def test_a_mistyped_local_path_is_not_sent_to_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(VsaeError, match="SAE path runs/typo does not exist"):
        vsae.sae.load("runs/typo")
    with pytest.raises(SystemExit) as e:
        main(["encode", "--sae", "runs/typo", "--acts", "a", "--out", "z"])
    assert e.value.code == 2


def _only_at_v1(tmp_path: Path) -> tuple[Path, Path]:
    """A store and a cache whose hub SAE exists only at revision v1 (no main ref): loading it
    offline works only if the revision reaches the load."""
    ref = load_file(str(FIX / "saev.expected.safetensors"))
    _store(tmp_path / "acts", ref["x"])
    files = {"sae.pt": FIX / "saev" / "sae.pt"}
    _cache(tmp_path / "cache", "someone/saev-sae", files, ref="v1", commit="e" * 40)
    return tmp_path / "acts", tmp_path / "cache"


def test_cli_eval_and_serve_take_revision(tmp_path):
    """Issue 25: every command with --sae takes --revision (the same as ID@REV) to the one load."""
    acts, cache = _only_at_v1(tmp_path)
    recon = ["eval", "recon", "--acts", str(acts), "--out", str(tmp_path / "ev"), "--quiet"]
    r = _vsae(*recon, "--sae", "someone/saev-sae", cache=cache)
    assert r.returncode == 2 and "neither a local directory nor in the Hugging Face cache" in r.stderr
    r = _vsae(*recon, "--sae", "someone/saev-sae", "--revision", "v1", cache=cache)
    assert r.returncode == 0, r.stderr
    rep = json.loads((tmp_path / "ev" / "recon.json").read_text())
    n = len(load_file(str(FIX / "saev.expected.safetensors"))["x"])
    assert rep["sae"] == "someone/saev-sae@v1" and rep["n_rows"] == n
    # serve, explicit mode: the source (which loads the SAE to compare hooks) is built before the
    # port is checked, so an out-of-range port stops it after the source and before any server
    serve = ["serve", "--acts", str(acts), "--sae", "someone/saev-sae", "--port", "70000"]
    r = _vsae(*serve, cache=cache)
    assert r.returncode == 2 and "Hugging Face cache" in r.stderr and "--port" not in r.stderr
    r = _vsae(*serve, "--revision", "v1", cache=cache)
    assert r.returncode == 2 and "--port must be in 0..65535" in r.stderr, r.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        ["eval", "recon", "--acts", "A", "--out", "O"],
        ["eval", "ms", "--acts", "A", "--out", "O"],
        ["eval", "shared", "--acts", "A", "--out", "O"],
        ["serve", "--acts", "A"],
        ["steer", "mllm", "--out", "O"],
        ["steer", "diffusion", "--out", "O"],
        ["encode", "--acts", "A", "--out", "O"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_revision_is_refused_with_an_at_revision_or_a_local_path(cmd, tmp_path, capsys):
    for sae, why in (
        ("someone/saev-sae@v1", "already names a revision"),
        (str(tmp_path), "is a local path"),
        ("someone/saev-sae", "not a branch, tag or commit name"),
    ):
        rev = "v 1" if why.startswith("not") else "v2"
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--sae", sae, "--revision", rev])
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith("error:") and "\n" not in err and why in err, err
    with pytest.raises(SystemExit) as e:  # and without any --sae (steer's default SAE is local)
        main([*cmd, "--revision", "v2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and ("needs a hub id --sae" in err or "Missing option '--sae'" in err), err


def test_a_known_name_takes_a_revision_too(tmp_path):
    """`--sae release/name --revision REV` becomes release/name@REV: still the known SAE's repo, at REV."""
    known = directory()["saev/clip-b16-in1k-24k"]
    _cache(tmp_path / "cache", known.repo_id, {"sae.pt": FIX / "saev" / "sae.pt"}, ref="v1", commit="d" * 40)
    kw = {"cache_dir": tmp_path / "cache", "local_files_only": True}
    with pytest.raises(VsaeError, match="nor in the Hugging Face cache"):  # no main ref in this cache
        SAE.from_pretrained("saev/clip-b16-in1k-24k", **kw)
    sae = SAE.from_pretrained("saev/clip-b16-in1k-24k@v1", **kw)
    assert sae.cfg.provenance["known_name"] == "saev/clip-b16-in1k-24k"
