"""A hub id that is not in the local cache fails at once, in one line, when offline
(HF_HUB_OFFLINE, or no connectivity) instead of retrying the network for ~33 s; a cached one
loads from the cache without touching the network."""

import os
import shutil
import subprocess
import sys
import time

import pytest

from vsae.errors import VsaeError
from vsae.models import hub, load
from vsae.models.tiny_models import build_tiny

MADE_UP = "vsae-test-nobody/no-such-model-3141"


def _fails_fast(monkeypatch, want: str) -> None:
    hub._probe.cache_clear()
    t0 = time.perf_counter()
    with pytest.raises(VsaeError, match=want) as e:
        load(MADE_UP)
    took = time.perf_counter() - t0
    assert took < 4.0, f"took {took:.1f} s"
    assert "\n" not in str(e.value) and MADE_UP in str(e.value)


def test_hf_hub_offline_fails_at_once(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fails_fast(monkeypatch, "not in the Hugging Face cache, and HF_HUB_OFFLINE is set")


def test_no_connectivity_fails_at_once(monkeypatch):
    """No HF_HUB_OFFLINE and the hub unreachable (a closed local port stands for no network)."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    _fails_fast(monkeypatch, r"127\.0\.0\.1 is unreachable \(no network\)")


def test_this_machine_without_network_fails_at_once(monkeypatch):
    """The real probe of huggingface.co, as a user without network meets it (old code: ~33 s)."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    hub._probe.cache_clear()
    t0 = time.perf_counter()
    reachable = hub.hub_reachable()
    assert time.perf_counter() - t0 < 3.0  # the probe itself is bounded
    if reachable:
        pytest.skip("this machine reaches huggingface.co")
    _fails_fast(monkeypatch, "huggingface.co is unreachable")


def test_cached_hub_id_loads_without_network(tmp_path):
    rev = "0123456789abcdef0123456789abcdef01234567"
    snap = tmp_path / "hub" / "models--vsae-test--tiny-vit" / "snapshots" / rev
    build_tiny("vit", tmp_path / "src")
    shutil.copytree(tmp_path / "src", snap)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(rev)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HUB_CACHE=str(tmp_path / "hub"), HF_ENDPOINT="http://127.0.0.1:9")
    code = (
        "import time; t = time.perf_counter(); from vsae.models import load; import transformers\n"
        "t = time.perf_counter(); lm = load('vsae-test/tiny-vit')\n"
        "print(lm.provenance['revision'], round(time.perf_counter() - t, 2))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got_rev, took = out.stdout.split()
    assert got_rev == rev and float(took) < 10.0


def test_cli_offline_error_is_one_line(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from vsae.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "data").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "data" / "a.png")  # valid data: the model is what fails
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        main(
            [
                "extract",
                "--model",
                MADE_UP,
                "--hook",
                "embed",
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
    assert time.perf_counter() - t0 < 4.0
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: cannot load model"), err
