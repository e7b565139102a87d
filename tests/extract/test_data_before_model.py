"""Bad data arguments of `vsae extract` / `extract-mllm` fail before any model is loaded (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vsae.extract.images as ex
import vsae.extract.mllm_tokens as exm
from vsae.cli import main
from vsae.data.fake_images import noise
from vsae.errors import VsaeError


def _tree(root: Path) -> Path:
    """root/{train,ood_combo}/{a,b}/*.png: a tree with a non-standard split name."""
    for i, split in enumerate(("train", "ood_combo")):
        for j, c in enumerate(("a", "b")):
            (root / split / c).mkdir(parents=True)
            noise(2 * i + j, (8, 8)).save(root / split / c / "0.png")
    return root


@pytest.fixture
def no_model(monkeypatch):
    """Any model load (or transformers set-up by the CLI) fails the test."""

    def boom(*a, **k):
        raise AssertionError("the model was loaded before the data arguments were checked")

    monkeypatch.setattr(ex, "load", boom)
    monkeypatch.setattr(exm, "load", boom)
    monkeypatch.setattr(exm, "_require_mllm", boom)
    monkeypatch.setattr("vsae.cli.extract._quiet_transformers", boom)


@pytest.mark.parametrize(
    "data, split, extra, match",
    [
        ("tree", "trian", {}, r"split 'trian' not found .*splits: ood_combo, train"),
        ("tree", None, {}, "has split folders"),
        ("empty", None, {}, "no images"),
        ("missing", None, {}, "does not exist"),
        ("list", "train", {}, "--split applies to"),
        ("tree", "train", {"max_images": 0}, "--max-images 0"),
        ("tree", "train", {"max_images_order": "last"}, "--max-images-order 'last'"),
    ],
)
def test_extract_checks_data_before_loading_the_model(tmp_path, no_model, data, split, extra, match):
    paths = {
        "tree": _tree(tmp_path / "tree"),
        "empty": tmp_path / "empty",
        "missing": tmp_path / "nope",
        "list": tmp_path / "list.txt",
    }
    paths["empty"].mkdir()
    paths["list"].write_text("x.png\n")
    cfg = ex.ExtractConfig(
        model="unused",
        hooks=("resid.0",),
        data=str(paths[data]),
        split=split,
        out=str(tmp_path / "o"),
        **extra,
    )
    with pytest.raises(VsaeError, match=match):
        ex.extract(cfg)
    assert not (tmp_path / "o").exists()


def test_cli_split_typo_is_one_line_before_the_model(tmp_path, no_model, capsys):
    tree = _tree(tmp_path / "tree")
    argv = ["extract", "--model", "unused", "--hook", "resid.0", "--data", str(tree), "--split", "tset"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "o"), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: split 'tset' not found"), err


def test_cli_split_typo_never_imports_torch_or_transformers(tmp_path):
    """In a fresh interpreter: the error comes before torch, transformers or a model are imported."""
    tree = _tree(tmp_path / "tree")
    code = textwrap.dedent(
        f"""
        import sys
        from vsae.cli import main
        try:
            main(["extract", "--model", "unused", "--hook", "resid.0", "--data", {str(tree)!r},
                  "--split", "tset", "--out", {str(tmp_path / "o")!r}, "--quiet"])
        except SystemExit as e:
            print("exit", e.code, "transformers" in sys.modules, "torch" in sys.modules)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.stdout.split() == ["exit", "2", "False", "False"], (r.stdout, r.stderr)
    assert (
        r.stderr.strip().startswith("error: split 'tset' not found")
        and len(r.stderr.strip().splitlines()) == 1
    )


def test_extract_mllm_checks_data_before_loading_the_model(tmp_path, no_model):
    tree = _tree(tmp_path / "tree")
    cfg = exm.MllmExtractConfig(
        model="unused", hooks=("resid.0",), data=str(tree), split="trian", out=str(tmp_path / "o")
    )
    with pytest.raises(VsaeError, match="split 'trian' not found"):
        exm.extract_mllm(cfg)
    cfg = exm.MllmExtractConfig(
        model="unused", hooks=("resid.0",), data=str(tree), split="train", out=str(tmp_path / "o")
    )
    with pytest.raises(VsaeError, match="no captions"):  # a plain tree has none: known before loading
        exm.extract_mllm(cfg)
