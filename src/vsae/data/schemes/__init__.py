"""Built-in ``<scheme>:`` image sources, one module each, imported on first use by
`vsae.data.image_sources.open_scheme` (found by file name): ``hf`` (Hugging Face datasets),
``hf_stream`` (streamed Hugging Face datasets) and ``wds`` (WebDataset tar shards). Each module
registers its opener with ``@source_scheme(name)``.

A source made of shards (``wds:`` tars, ``hf_stream:`` dataset shards) records its rows per shard
as ``identity["shard_rows"]``; `shard_part` then splits ``--shard I/N`` and torchrun ranks at
shard boundaries."""

from __future__ import annotations

import numpy as np

from vsae.data.image_sources import Source
from vsae.errors import VsaeError


def shard_part(full: Source, picked: np.ndarray | None, part: tuple[int, int]) -> tuple[int, int] | None:
    """The block [lo, hi) of the used items (`picked`: their sorted indices in `full`, None: all)
    that part I of N handles when `full` is made of shards: parts take contiguous runs of whole
    shards (shards I*S//N .. (I+1)*S//N - 1 of S), so each process opens only its own shards.
    None when `full` records no shards (the caller splits the items evenly). More parts than
    shards is refused."""
    rows = (full.identity or {}).get("shard_rows")
    if not rows or part[1] == 1:
        return None
    i, n = part
    s = len(rows)
    if n > s:
        raise VsaeError(
            f"--shard {i}/{n}: {full.root} has {s} shards and is split by shard; use at most {s} parts "
            "(or fewer torchrun processes)"
        )
    starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    lo, hi = int(starts[i * s // n]), int(starts[(i + 1) * s // n])
    if picked is None:
        return lo, hi
    return int(np.searchsorted(picked, lo)), int(np.searchsorted(picked, hi))
