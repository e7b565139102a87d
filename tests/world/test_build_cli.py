"""`vsae world build` never overwrites the package's shipped models."""

import subprocess
import sys

from vsae.world.assets import ASSETS_DIR


def run(*args):
    return subprocess.run([sys.executable, "-m", "vsae.cli", *args], capture_output=True, text=True)


def test_world_build_refuses_to_overwrite_the_shipped_assets():
    before = {p: p.stat().st_mtime_ns for p in ASSETS_DIR.rglob("*") if p.is_file()}
    for extra in ([], ["--out", str(ASSETS_DIR)], ["--out", str(ASSETS_DIR / ".." / "assets")]):
        r = run("world", "build", "--only", "clip", "--clip-steps", "1", *extra)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "would overwrite the shipped clip" in lines[0], lines
        assert lines[0].startswith("error: ") and "pass --out NEW_DIR" in lines[0]
    r = run("world", "build", "--only", "llava", "--llava-steps", "1")
    assert r.returncode == 2 and "would overwrite the shipped llava" in r.stderr
    assert before == {p: p.stat().st_mtime_ns for p in ASSETS_DIR.rglob("*") if p.is_file()}
