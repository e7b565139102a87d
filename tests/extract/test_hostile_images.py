"""Every file the source sees is either used or listed in the store's `skipped` with its real reason
(issue 16): symlink loops, dangling symlinks, FIFOs, a symlink to /dev/zero and an unreadable class
folder used to vanish from the image list without a trace."""

import os

import pytest

from vsae.data import folder_source
from vsae.data.fake_images import noise
from vsae.extract import ExtractConfig, extract
from vsae.store import ActivationStore


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from vsae.models.tiny_models import build_tiny

    return build_tiny("clip_vision", tmp_path_factory.mktemp("m") / "clip")


def hostile_tree(root):
    a, b = root / "a", root / "b"
    a.mkdir(parents=True)
    b.mkdir()
    noise(0, (20, 20)).save(a / "good.png")
    (a / "loop.png").symlink_to(a / "loop.png")
    (a / "dangling.png").symlink_to(root / "nowhere.png")
    os.mkfifo(a / "fifo.png")
    (a / "zero.png").symlink_to("/dev/zero")
    (a / "notes.txt").write_text("not an image by name: ignored")
    noise(1, (20, 20)).save(b / "hidden_by_perms.png")
    os.chmod(b, 0)
    return {
        "a/loop.png": "symlink loop",
        "a/dangling.png": "dangling symlink",
        "a/fifo.png": "not a regular file but a FIFO",
        "a/zero.png": "not a regular file but a character device",
        "b": "permission denied (a folder whose images cannot be listed)",
    }


def deny_folder_as_root(monkeypatch, folder):
    """Root lists and reads mode-000 folders; make os answer as it does for every other user."""
    if os.geteuid() != 0:
        return
    real_scandir, real_access = os.scandir, os.access

    def scandir(p="."):
        if os.fspath(p) == str(folder):
            raise PermissionError(13, "Permission denied", os.fspath(p))
        return real_scandir(p)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(
        os, "access", lambda p, m, **k: False if os.fspath(p) == str(folder) else real_access(p, m, **k)
    )


def test_every_file_seen_is_used_or_skipped_with_its_reason(tmp_path, clip, monkeypatch):
    want = hostile_tree(tmp_path / "d")
    deny_folder_as_root(monkeypatch, tmp_path / "d" / "b")
    src = folder_source(tmp_path / "d")
    assert src.classes == ("a", "b")
    assert sorted(os.path.relpath(p, tmp_path / "d") for p in src.items) == sorted([*want, "a/good.png"])
    try:
        extract(
            ExtractConfig(
                model=str(clip),
                hooks=("resid.0",),
                data=str(tmp_path / "d"),
                out=str(tmp_path / "s"),
                batch_size=2,
                num_workers=0,
                progress=False,
                threads=1,
            )  # fmt: skip
        )
    finally:
        os.chmod(tmp_path / "d" / "b", 0o755)
    s = ActivationStore.open(tmp_path / "s")
    got = {os.path.relpath(x["path"], tmp_path / "d"): x["reason"] for x in s.skipped}
    assert got == want
    assert s.complete and sorted(set(s.image_index.tolist())) == [
        src.items.index(str(tmp_path / "d/a/good.png"))
    ]
