"""Write the latents of an SAE over a whole activation store as a sparse store (``vsae encode``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm import tqdm

from vsae.errors import VsaeError
from vsae.sae.base import SAE
from vsae.sae.sae_config import EncodeConfig
from vsae.sae.selection import check_rows
from vsae.store.safe_io import output_lock

if TYPE_CHECKING:
    from vsae.store import ActivationStore


@torch.no_grad()
def encode_store(
    sae: SAE,
    acts: ActivationStore,
    out: str | os.PathLike,
    batch_size: int = EncodeConfig.batch_size,
    device: str = EncodeConfig.device,
    dtype: str = EncodeConfig.dtype,
    progress: bool = True,
    sae_path: str | os.PathLike | None = None,
    force: bool = False,
) -> Path:
    """Encode every row of ``acts`` (inference semantics) into a sparse store at ``out``.

    The new store keeps each row's image/token index and records the SAE and the source store
    in its provenance. Re-running after a kill resumes at the first row not yet written. A store
    whose hook or token selection differs from the SAE's training rows is refused unless `force`
    (`vsae.sae.selection.check_rows`).
    """
    if batch_size < 1:
        raise VsaeError(f"--batch-size {batch_size}: must be at least 1")
    check_rows(
        sae.cfg.provenance,
        getattr(acts, "provenance", None),
        sae=str(sae_path) if sae_path else "the SAE",
        rows=f"store {getattr(acts, 'path', '')}",
        force=force,
    )
    sae_sha = weights_sha256(sae)
    sae = sae.to(device).eval()
    src_prov = dict(getattr(acts, "provenance", {}) or {})
    prov = {
        **src_prov,
        "kind": "sae_latents",
        "sae": {**sae.cfg.to_json(), "provenance": None},
        "sae_path": str(sae_path) if sae_path else None,
        "source_store": str(getattr(acts, "path", "")),
        # what a resumed run must be continuing: the same weights and the same input rows
        "sae_sha256": sae_sha,
        "source_fingerprint": getattr(acts, "fingerprint", None),
    }
    _check_same_inputs(Path(out), prov)
    with output_lock(out):
        _encode(sae, acts, out, prov, batch_size, device, dtype, progress)
    return Path(out)


def weights_sha256(sae: SAE) -> str:
    """sha256 of an SAE's parameters (names, dtypes, shapes, bytes): its identity by content."""
    h = hashlib.sha256()
    for name, t in sorted(sae.state_dict().items()):
        c = t.detach().cpu().contiguous()
        h.update(f"{name}:{c.dtype}:{tuple(c.shape)};".encode())
        h.update(c.reshape(-1).view(torch.uint8).numpy().tobytes() if c.numel() else b"")
    return h.hexdigest()


def _check_same_inputs(out: Path, prov: dict) -> None:
    """Refuse to resume a latent store encoded from other SAE weights or other input rows."""
    from vsae.store.manifest import read_manifests

    if not (out / "manifest.json").is_file():
        return
    old = read_manifests(out)[0].get("provenance") or {}
    for key, what in (("sae_sha256", "another SAE's weights"), ("source_fingerprint", "another input store")):
        if old.get(key, prov[key]) != prov[key] or (key not in old and old.get("kind") == "sae_latents"):
            raise VsaeError(
                f"latent store {out} was encoded from {what} (sha256 {str(old.get(key))[:12]} vs "
                f"{str(prov[key])[:12]}); a resumed encode must use the same --sae and --acts: use a new --out"
            )


def _encode(
    sae: SAE,
    acts: ActivationStore,
    out: str | os.PathLike,
    prov: dict,
    batch_size: int,
    device: str,
    dtype: str,
    progress: bool,
) -> None:
    """The encoding loop of `encode_store`, into the locked output store ``out``."""
    from vsae.store import SparseStoreWriter

    w = SparseStoreWriter.create_or_resume(out, d=sae.cfg.d_sae, dtype=dtype, provenance=prov)
    img, tok = acts.image_index, acts.token_index
    n = len(acts)
    # Rows are added in store order; resume from the first row of the next image not yet committed.
    ordered = bool(n == 0 or np.all(np.diff(img) >= 0))
    start = int(np.searchsorted(img, w.next_image, side="left")) if n and ordered else 0
    bar = tqdm(total=n, initial=start, disable=not progress, unit="row", dynamic_ncols=True)
    a = start
    while a < n:
        b = min(a + batch_size, n)
        if ordered and b < n:  # end batches on an image boundary so every commit holds whole images
            cut = int(np.searchsorted(img, img[b], side="left"))
            b = cut if cut > a else int(np.searchsorted(img, img[a], side="right"))
        z = sae.encode(acts[a:b].to(device)).cpu()
        w.add(z, img[a:b], tok[a:b])
        if ordered:
            w.mark_images_done(int(img[b]) if b < n else int(img[-1]) + 1)
        bar.update(b - a)
        a = b
    bar.close()
    w.close()
