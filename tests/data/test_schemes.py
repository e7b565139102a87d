"""Registered ``<scheme>:<rest>`` image sources: core code opens them with `open_source` alone;
the world registers ``world:<split>[:<n>]`` when imported, and extraction reads its in-memory images."""

import numpy as np
import pytest
import torch
from PIL import Image

from vsae.data import open_source
from vsae.data.image_sources import SOURCE_SCHEMES, Source, register_source_scheme, source_schemes
from vsae.data.subset import choose
from vsae.errors import VsaeError


def _squares(rest: str, n: int | None, seed: int) -> Source:
    k = int(rest) if rest else (n or 0)
    rng = np.random.default_rng(seed)
    imgs = tuple(Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)) for _ in range(k))
    return Source(
        "squares",
        f"squares:{k}",
        None,
        tuple(f"sq{i}" for i in range(k)),
        (0, 1) * (k // 2) + (0,) * (k % 2),
        ("even", "odd"),
        images=imgs,
        records=tuple({"i": i} for i in range(k)),
    )


@pytest.fixture
def squares():
    register_source_scheme("squares", _squares)
    yield
    SOURCE_SCHEMES.unregister("squares")


def test_a_registered_scheme_opens_through_open_source(squares, tmp_path):
    src = open_source("squares:5", seed=2)
    assert src.kind == "squares" and len(src) == 5 and len(src.images) == 5
    again = open_source("squares:", n=5, seed=2)  # n from the caller when the spec has none
    assert [np.asarray(a).tobytes() for a in src.images] == [np.asarray(b).tobytes() for b in again.images]
    sub, _, idx = choose(src, 2, "first", 0)
    assert sub.items == ("sq0", "sq1") and sub.records == ({"i": 0}, {"i": 1}) and len(sub.images) == 2
    with pytest.raises(VsaeError, match="--split applies to folder trees"):
        open_source("squares:3", split="train")
    with pytest.raises(VsaeError, match="is a image source; this model reads text"):
        open_source("squares:3", modality="text")
    assert "squares" in source_schemes()


def test_unknown_scheme_is_one_line_and_paths_win(tmp_path, monkeypatch):
    with pytest.raises(VsaeError, match=r"unknown image source nope: .*registered"):
        open_source("nope:train")
    d = tmp_path / "nope:train"  # a folder whose name looks like a scheme is a folder
    (d / "a").mkdir(parents=True)
    Image.new("RGB", (4, 4)).save(d / "a" / "x.png")
    monkeypatch.chdir(tmp_path)
    assert open_source("nope:train").kind == "folder"


def test_world_scheme_after_import_and_extraction_from_memory(tmp_path):
    import vsae.world
    from vsae.extract import ExtractConfig, extract
    from vsae.models import capture, load
    from vsae.store import ActivationStore

    src = open_source("world:test:6", seed=3)
    ref = vsae.world.generate("test", 6, seed=3)
    assert [r["id"] for r in src.records] == [r.id for r in ref.records] == list(src.items)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(src.images, ref.pil_images()))
    with pytest.raises(VsaeError, match="needs a number of images"):
        open_source("world:test")

    model = str(vsae.world.shipped_clip_dir())
    cfg = ExtractConfig(
        model=model,
        hooks=("resid.0",),
        data="world:test:6",
        out=str(tmp_path / "s"),
        tokens="cls",
        dtype="float32",
        batch_size=4,
        progress=False,
        threads=1,
    )
    extract(cfg)
    lm = load(model)
    with capture(lm, "resid.0") as cap:
        lm.run(lm.preprocess(list(vsae.world.generate("test", 6, seed=0).pil_images())))
    s = ActivationStore.open(tmp_path / "s")
    torch.testing.assert_close(s[0:6], cap.output[:, 0].float(), atol=1e-5, rtol=1e-4)


def test_the_cli_wires_the_world_in(tmp_path):
    """In a fresh process `vsae extract --data world:<split>:<n>` works: the entry point
    ``vsae.image_sources: world = vsae.world.source`` brings the world's source (no command, and no
    core code, imports the world); a bad spec is one line."""
    import subprocess
    import sys

    import vsae.world

    run = [sys.executable, "-c", "import sys; from vsae.cli import main; main(sys.argv[1:])"]
    args = ["extract", "--model", str(vsae.world.shipped_clip_dir()), "--hook", "resid.0", "--quiet"]
    r = subprocess.run(
        [*run, *args, "--data", "world:val:5", "--out", str(tmp_path / "s")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from vsae.store import ActivationStore

    s = ActivationStore.open(tmp_path / "s")
    assert len(s) == 5 and s.manifest["provenance"]["data"]["root"] == "world:val:5"
    r = subprocess.run(
        [*run, *args, "--data", "world:val", "--out", str(tmp_path / "t")], capture_output=True, text=True
    )
    assert (
        r.returncode == 2 and r.stderr.strip() == "error: world:val needs a number of images: world:val:<n>"
    )


def test_core_opens_world_through_the_entry_point_alone():
    """A fresh process that never imports `vsae.world` opens ``world:`` through `open_source`:
    the registry imports `vsae.world.source` from the ``vsae.image_sources`` entry point."""
    import subprocess
    import sys

    code = (
        "import sys; from vsae.data import open_source, SOURCE_SCHEMES\n"
        "assert 'vsae.world' not in sys.modules and 'world' in SOURCE_SCHEMES.names()\n"
        "src = open_source('world:test:3')\n"
        "print(src.kind, len(src), 'vsae.world.source' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["world", "3", "True"], r.stderr[-2000:]


def test_a_taken_scheme_is_refused_and_the_same_one_again_is_no_change(squares):
    from vsae.data import source_scheme

    register_source_scheme("squares", _squares)  # the same opener again: no change
    assert SOURCE_SCHEMES.get("squares").opener is _squares
    with pytest.raises(VsaeError, match="image source scheme 'squares' is already registered"):

        @source_scheme("squares")
        def other(rest, n, seed):
            raise AssertionError

    with pytest.raises(VsaeError, match=r"unknown image source scheme 'nope'; use one of: .*hf, .*world"):
        SOURCE_SCHEMES.get("nope")
    with pytest.raises(VsaeError, match="unknown options"):
        source_scheme("bad", options=("colour",))
