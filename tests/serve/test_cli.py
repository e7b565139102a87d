"""`vsae serve` as a user runs it: the URL it prints answers; bad arguments are one line, exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def _vsae(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vsae.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def _serve(*args: str):
    """Start `vsae serve ARGS`, wait for the URL line; returns (process, url)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "vsae.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    line = ""
    while time.time() < deadline and "http://" not in line:
        line = p.stdout.readline()
        if not line and p.poll() is not None:
            raise AssertionError(p.stderr.read())
    assert "http://127.0.0.1:" in line, line
    return p, line[line.index("http://") :].split()[0].rstrip("/")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("how", ["demo", "flags"])
def test_serve_prints_a_url_that_answers(demo_dir, built, how, tmp_path):
    if how == "demo":
        args = [str(demo_dir)]
    else:  # a run trained by hand: `vsae extract` store + `vsae train` run, names from `vsae eval names`
        (tmp_path / "names.json").write_text(json.dumps({"names": built["names"], "scores": built["scores"]}))
        args = [
            "--acts",
            str(built["store"]),
            "--sae",
            str(built["run"]),
            "--images",
            str(built["world"]),
            "--names",
            str(tmp_path / "names.json"),
            "--host",
            "127.0.0.1",
        ]
    p, url = _serve(*args, "--port", "0")
    try:
        info = _get(url + "/api/info")
        assert info["sae"] == "resid.1/" + built["run"].name  # the id names its hook
        assert info["n_latents"] == built["F"] and info["hook"] == "resid.1" and info["heatmaps"] is None
        assert info["has_names"] and info["has_ms"] == (how == "demo")
        rows = _get(url + "/api/latents?sort=freq&order=desc&limit=3")["rows"]
        d = _get(f"{url}/api/latent/{rows[0]['latent']}")
        assert d["top"] and d["purity"]
        with urllib.request.urlopen(f"{url}/api/heatmap/{rows[0]['latent']}/{d['top'][0]['image']}.png") as r:
            assert r.headers["Content-Type"] == "image/png" and len(r.read()) > 100
    finally:
        p.terminate()
        p.wait(30)


def test_bad_arguments_are_one_line(demo_dir, tmp_path, built, other_hook_store):
    for args, words in [
        ([str(demo_dir), "--force"], "not both"),
        (["--acts", str(other_hook_store), "--sae", str(built["run"])], "trained on resid.1"),
        ([str(demo_dir), "--host", "256.1.1.1"], "cannot listen on 256.1.1.1"),
        ([], "give PATH"),
        ([str(tmp_path)], "results.json"),
        ([str(demo_dir), "--acts", str(tmp_path)], "not both"),
        (["--acts", str(tmp_path), "--sae", str(tmp_path)], "error:"),
        ([str(demo_dir), "--port", "70000"], "--port"),
    ]:
        r = _vsae("serve", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error:") and words in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_taken_port(demo_dir):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        r = _vsae("serve", str(demo_dir), "--port", str(s.getsockname()[1]))
    finally:
        s.close()
    assert r.returncode == 2 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
