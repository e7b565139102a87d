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


def test_build_world_is_the_library_call_behind_the_command(tmp_path):
    """`vsae.world.builder.build_world` builds what a `WorldBuildConfig` asks for (the command is a
    thin call of it): refuses the shipped assets, says what it built, returns the summaries written."""
    import json

    import pytest

    from vsae.errors import VsaeError
    from vsae.world.build_config import WorldBuildConfig
    from vsae.world.builder import build_world

    with pytest.raises(VsaeError, match="would overwrite the shipped simenc"):
        build_world(WorldBuildConfig(only="simenc", simenc_steps=1))
    lines: list[str] = []
    cfg = WorldBuildConfig(out_dir=str(tmp_path), only="simenc", simenc_steps=2, threads=1)
    res = build_world(cfg, echo=lines.append)
    assert list(res) == ["simenc"]
    assert res["simenc"] == json.loads((tmp_path / "simenc" / "vsae_world_build.json").read_text())
    assert lines[0].startswith("simenc: ") and lines[0].endswith(f"-> {tmp_path}/simenc")
    assert lines[1].startswith("  val head accuracy: {") and len(lines) == 2
