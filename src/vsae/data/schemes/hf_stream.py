"""The ``hf_stream:<dataset>[:<config>]`` image source: a streamed (iterable) Hugging Face dataset.

``<dataset>`` is what ``load_dataset(<dataset>, <config>, streaming=True)`` reads (a local
Parquet / Arrow / image-folder directory, or a hub id when online), with ``--split``,
``--image-column`` and ``--label-column`` as for ``hf:``; `stream_source` takes an
`IterableDataset` built in Python (``Dataset.to_iterable_dataset(num_shards=...)`` ...).

A stream has no length and no random access, so the source is indexed once when it is opened:
for each of the dataset's shards (``IterableDataset.shard(n_shards, i)``: a data file of a Parquet
dataset) its rows are counted and their labels collected. Local Parquet shards are indexed from
their footers (``num_rows``) and their label column alone (``indexed_from: "parquet"`` in the
store's provenance); any other stream (remote files, image folders, a dataset built in Python) is
read once through its label column, or its undecoded image column without one
(``indexed_from: "stream"``). Knowing every shard's length, vsae keeps its guarantees as for
a saved dataset: ``--max-images`` is the same seeded, class-stratified sample over the whole
stream (identical to that of the same rows saved to disk: no reservoir is needed, which would also
have to read the whole stream before the first image is used); every row is an item named
``<split>/<shard>/<offset>`` (its stream position), used or listed in ``skipped`` with the reason;
a killed extraction resumes exactly, because the manifest's resume point is an image index and
each index names one (shard, offset); ``--shard I/N`` and torchrun ranks split by dataset shard.
The per-shard row counts are in the store's provenance (``data.shard_rows``).

Reading: each process keeps one open iterator per shard and reads forward; an item behind the
iterator reopens the shard. Rows between the items it needs are skipped undecoded (with
``--num-workers W`` each worker reads the whole stream of its range, decoding only its batches).
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vsae.data.decode import DecodeError
from vsae.data.image_sources import Source, register_source_scheme
from vsae.data.schemes.hf import _datasets, _pick_column, cell_bytes, label_table, load, parse_spec
from vsae.errors import VsaeError


def _shards(ds: Any) -> list[Any]:
    """The dataset's shards as one-shard iterable datasets, in stream order."""
    n = int(getattr(ds, "n_shards", 1) or 1)
    return [ds] if n == 1 else [ds.shard(num_shards=n, index=i) for i in range(n)]


def _parquet_files(shards: list[Any]) -> list[str] | None:
    """The local Parquet file of each shard, when every shard is exactly one whole file read as it
    is (``load_dataset(<dir of .parquet files>, streaming=True)``); None otherwise."""
    files: list[str] = []
    for sh in shards:
        kw = getattr(getattr(sh, "_ex_iterable", None), "kwargs", None) or {}
        fs, groups = kw.get("files"), kw.get("row_groups_list") or [None]
        if not isinstance(fs, list) or len(fs) != 1 or groups != [None]:
            return None
        if not (isinstance(fs[0], str) and fs[0].endswith(".parquet") and Path(fs[0]).is_file()):
            return None
        files.append(fs[0])
    return files


def _index(shards: list[Any], img_col: str, lab_col: str | None) -> tuple[list[int], list[Any], str]:
    """Rows per shard, every row's raw label (None without a label column) and how they were found:
    from the Parquet files' footers and label column (``parquet``) when the shards are local
    Parquet files, else by one pass over the stream's label column (the image column, undecoded,
    when there is none: ``stream``)."""
    files = _parquet_files(shards)
    if files is not None:
        import pyarrow.parquet as pq  # a dependency of `datasets`

        rows = [pq.ParquetFile(f).metadata.num_rows for f in files]
        if lab_col is None:
            return rows, [None] * sum(rows), "parquet"
        return (
            rows,
            [v for f in files for v in pq.read_table(f, columns=[lab_col]).column(0).to_pylist()],
            "parquet",
        )
    counts: list[int] = []
    raw: list[Any] = []
    for sh in shards:
        if lab_col is not None:
            view = sh.select_columns([lab_col])
        else:
            view = sh.select_columns([img_col]).cast_column(img_col, _datasets().Image(decode=False))
        n = 0
        for value in _column(view, lab_col or img_col):
            n += 1
            raw.append(value if lab_col is not None else None)
        counts.append(n)
    return counts, raw, "stream"


def _column(ds: Any, column: str, batch: int = 64) -> Iterator[Any]:
    """The values of one column of an iterable dataset, in order. Read through
    ``IterableDataset.iter(batch_size)``: iterating the dataset itself inside a DataLoader worker
    would give that worker only its share of the shards (datasets splits them by worker)."""
    for rows in ds.iter(batch_size=batch):
        yield from rows[column]


class StreamReader:
    """Item ``<split>/<shard>/<offset>`` -> the encoded image bytes of that row of the stream
    (picklable: DataLoader workers open their own iterators)."""

    def __init__(self, shards: list[Any], column: str):
        feat = _datasets().Image(decode=False)
        self.shards = [sh.select_columns([column]).cast_column(column, feat) for sh in shards]
        self.column = column
        self._cursors: dict[int, tuple[Iterator[Any], int]] = {}
        atexit.register(_close_reader, weakref.ref(self))

    def __getstate__(self) -> dict[str, Any]:
        return {"shards": self.shards, "column": self.column, "_cursors": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        atexit.register(_close_reader, weakref.ref(self))

    def close(self) -> None:
        """Close the open shard iterators (a generator left open warns at interpreter exit)."""
        for it, _ in self._cursors.values():
            getattr(it, "close", lambda: None)()
        self._cursors.clear()

    def _cell(self, shard: int, offset: int) -> Any:
        it, pos = self._cursors.pop(shard, (None, 0))
        if it is None or pos > offset:
            if it is not None:
                getattr(it, "close", lambda: None)()
            it, pos = _column(self.shards[shard], self.column), 0
        try:
            row = next(itertools.islice(it, offset - pos, None))
        except StopIteration:
            raise DecodeError(
                f"the stream's shard {shard} ended before row {offset} (the dataset changed since it was indexed)"
            ) from None
        self._cursors[shard] = (it, offset + 1)
        return row

    def __call__(self, item: str) -> bytes:
        _, shard, offset = item.rsplit("/", 2)
        return cell_bytes(self._cell(int(shard), int(offset)))


def _close_reader(ref: weakref.ref[StreamReader]) -> None:
    reader = ref()
    if reader is not None:
        reader.close()


def stream_source(
    ds: Any,
    name: str,
    split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Source:
    """A Source over the rows of an `IterableDataset` (`name`: the spec recorded as its root)."""
    mod = _datasets()
    if not isinstance(ds, mod.IterableDataset):
        raise VsaeError(f"{name}: expected a datasets.IterableDataset, got {type(ds).__name__}")
    if ds.features is None:
        raise VsaeError(
            f"{name}: the stream declares no features (column types); cast them with "
            "ds.cast_column(..., datasets.Image()) or save the data as Parquet"
        )
    feats = dict(ds.features)
    img_col = _pick_column(feats, mod.Image, image_column, "--image-column", name)
    if img_col is None:
        raise VsaeError(
            f"{name} has no Image column (columns: {', '.join(feats)}); name it with --image-column"
        )
    lab_col = _pick_column(feats, mod.ClassLabel, label_column, "--label-column", name)
    shards = _shards(ds)
    counts, raw, how = _index(shards, img_col, lab_col)
    if not raw:
        raise VsaeError(f"{name} split {split or 'rows'} has no rows")
    labels, classes = label_table(feats[lab_col], raw) if lab_col else ((-1,) * len(raw), ())
    tag = split or "rows"
    items = tuple(f"{tag}/{s}/{o}" for s, n in enumerate(counts) for o in range(n))
    digest = hashlib.sha256(repr((counts, labels, classes)).encode()).hexdigest()
    return Source(
        kind="hf_stream",
        root=name,
        split=split,
        items=items,
        labels=labels,
        classes=classes,
        reader=StreamReader(shards, img_col),
        identity={
            "shard_rows": counts,
            "indexed_from": how,
            "index_sha256": digest,
            "image_column": img_col,
            "label_column": lab_col,
        },
    )


def open_hf_stream(
    rest: str,
    n: int | None,
    seed: int,
    split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Source:
    """``hf_stream:<dataset>[:<config>]`` -> a Source over the streamed rows (`n`, `seed` unused)."""
    name, config = parse_spec(rest)
    ds, split = load(name, config, split, streaming=True)
    return stream_source(ds, f"hf_stream:{rest}", split, image_column, label_column)


register_source_scheme("hf_stream", open_hf_stream, options=("split", "image_column", "label_column"))
