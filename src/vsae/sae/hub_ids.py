"""The names an SAE argument may take besides a path, checked without torch (every ``--sae``
checks its value here before anything heavy is imported): a hub id
``org/repo[/subfolder][@revision]`` or a known public SAE ``release/name`` (:mod:`vsae.sae.pretrained`)."""

from __future__ import annotations

import re
from pathlib import Path

from vsae.errors import VsaeError

# org/repo, optionally /sub/folder and @revision (the one form every `--sae` takes)
_HUB_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?P<sub>(/[\w.-]+)*)(@(?P<rev>[\w./-]+))?$")
# the files of every format vsae reads (vsae.sae.importers), fetched from a hub repo
HUB_FILES = (
    "config.json",
    "sae.safetensors",
    "cfg.json",
    "sae_weights.safetensors",
    "ae.pt",
    "weights.pt",
    "sae.pt",
    "n_images_*.pt",  # ViT-Prisma's released checkpoints
    "overcomplete.json",
)


def looks_like_hub_id(name: str) -> bool:
    """Whether ``name`` has the form of a hub id (``org/repo[/subfolder][@revision]``) or of a
    known-SAE name (``release/name``); no network, no torch."""
    return _HUB_ID.match(name) is not None and not name.startswith((".", "/"))


def split_hub_id(name: str) -> tuple[str, str | None, str | None]:
    """``org/repo/sub/folder@rev`` -> (``org/repo``, ``sub/folder`` or None, ``rev`` or None)."""
    m = _HUB_ID.match(name)
    if m is None:
        raise VsaeError(f"{name!r} is not a hub id (org/repo[/subfolder][@revision])")
    return m["repo"], (m["sub"].strip("/") or None), m["rev"]


def check_sae_arg(name: str) -> None:
    """A torch-free early check of a ``--sae`` value: a path that exists, or a hub id / known name."""
    local_typo = Path(name.split("/")[0]).is_dir()  # runs/typo: a local path, not a hub id
    if not Path(name).exists() and (not looks_like_hub_id(name) or local_typo):
        raise VsaeError(
            f"SAE path {name} does not exist (and is not a hub id org/repo[/subfolder][@revision])"
        )


def with_revision(name: str, revision: str | None) -> str:
    """``--sae NAME --revision REV`` as the one id ``NAME@REV`` that :func:`vsae.sae.load` reads
    (no torch, no network). Refused in one line: a revision given twice (``@rev`` in NAME too), a
    local path (it has no revisions) or a revision no hub id can carry."""
    if revision is None:
        return name
    if Path(name).exists() or Path(name.split("/")[0]).is_dir() or not looks_like_hub_id(name):
        raise VsaeError(
            f"--revision {revision} needs a hub id --sae (org/repo[/subfolder]); {name} is a local path"
        )
    if split_hub_id(name)[2] is not None:
        raise VsaeError(
            f"--sae {name} already names a revision (@...); give it once: drop --revision or the @"
        )
    if not looks_like_hub_id(f"{name}@{revision}"):
        raise VsaeError(
            f"--revision {revision!r} is not a branch, tag or commit name (letters, digits, . _ - /)"
        )
    return f"{name}@{revision}"
