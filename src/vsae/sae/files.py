"""The vsae SAE checkpoint format on disk: ``config.json`` + ``sae.safetensors`` (no pickle), atomic
writes, and finding a checkpoint (a run directory, a sweep with one SAE, a hub repo id).

No model code here: :mod:`vsae.sae.io` and :mod:`vsae.sae.saelens` build on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from vsae.errors import VsaeError, read_json
from vsae.sae.hub_ids import HUB_FILES, looks_like_hub_id, split_hub_id
from vsae.store.safe_io import atomic_path, atomic_write_json

FORMAT = "vsae-sae"
VERSION = 1
WEIGHTS = "sae.safetensors"
CONFIG = "config.json"


def write_json_atomic(path: Path, obj: Any) -> None:
    """config.json / state.json: sorted keys, written by the one safe writer (vsae.store.safe_io)."""
    atomic_write_json(path, obj, sort_keys=True)


def save_tensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors through the one safe writer (temporary file, fsync, rename; never through a link)."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def read_config(directory: Path) -> dict[str, Any]:
    """The parsed config.json of a vsae SAE directory, or a VsaeError naming the problem."""
    p = directory / CONFIG
    if not p.is_file():
        raise VsaeError(
            f"{directory} is not a vsae SAE (no {CONFIG}); pass a run directory written by `vsae train`"
        )
    meta = read_json(p, "SAE config", "the checkpoint is damaged: retrain or copy it again")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise VsaeError(
            f"{p} is not a vsae SAE config (format != {FORMAT!r}); for SAELens use `vsae.sae.saelens.load_saelens`"
        )
    if meta.get("version", 0) > VERSION:
        raise VsaeError(f"{p} was written by a newer vsae (version {meta['version']}); upgrade vsae")
    return meta


def resolve(path: str | os.PathLike) -> Path:
    """The SAE directory for a run dir, a sweep with one SAE, or a path to sae.safetensors."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.exists():
        raise VsaeError(f"SAE path {p} does not exist")
    if (p / CONFIG).is_file():
        return p
    subs = sorted(q for q in p.iterdir() if (q / CONFIG).is_file()) if p.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        names = ", ".join(q.name for q in subs)
        raise VsaeError(f"{p} is a sweep with several SAEs ({names}); pass one of them, e.g. {subs[0]}")
    raise VsaeError(f"{p} is not a vsae SAE (no {CONFIG}); pass a run directory written by `vsae train`")


def resolve_pretrained(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """A local path for ``name_or_path``: the path itself if it exists; else a known public SAE
    (``release/name`` of :mod:`vsae.sae.pretrained`) or a Hugging Face hub id
    ``org/repo[/subfolder][@revision]``, downloaded (or found in the cache, which is all that
    ``HF_HUB_OFFLINE=1`` allows) through ``huggingface_hub.snapshot_download``, as transformers'
    ``from_pretrained`` does."""
    local = Path(name_or_path) / subfolder if subfolder else Path(name_or_path)
    # a path whose first directory exists here (runs/typo) is a local path, not a hub id
    first_exists = Path(str(name_or_path).split("/")[0]).is_dir()
    if local.exists() or not looks_like_hub_id(str(name_or_path)) or first_exists:
        if not local.exists():
            raise VsaeError(
                f"SAE path {local} does not exist; pass a directory written by `vsae train` or a hub id"
            )
        return local
    from vsae.sae.pretrained import find

    known = find(str(name_or_path))
    at_rev = str(name_or_path).partition("@")[2]  # release/name@rev: a known SAE at rev
    if known is not None:
        repo, sub, rev = known.repo_id, known.subfolder, at_rev or known.revision
    else:
        repo, sub, rev = split_hub_id(str(name_or_path))
    sub = "/".join(p for p in (sub, subfolder) if p) or None
    rev = revision or rev
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    patterns = [*HUB_FILES, *(f"*/{f}" for f in HUB_FILES)] if not sub else [f"{sub}/*"]
    try:
        root = snapshot_download(
            repo,
            revision=rev,
            allow_patterns=patterns,
            cache_dir=None if cache_dir is None else str(cache_dir),
            local_files_only=bool(local_files_only),
        )
    except LocalEntryNotFoundError:
        from huggingface_hub.constants import HF_HUB_CACHE

        cache = cache_dir or HF_HUB_CACHE
        raise VsaeError(
            f"SAE {name_or_path!r} is neither a local directory nor in the Hugging Face cache ({cache}), and the "
            "hub cannot be reached (offline or HF_HUB_OFFLINE=1); check the id, or download it once with network access"
        ) from None
    except (HFValidationError, OSError) as e:  # repo/revision not found and HTTP errors are OSErrors
        raise VsaeError(f"cannot get SAE {name_or_path!r} from the hub ({str(e).splitlines()[0]})") from None
    where = Path(root) / sub if sub else Path(root)
    if not where.exists():
        raise VsaeError(f"hub repo {repo!r} has no folder {sub!r} (revision {rev or 'main'})")
    return where
