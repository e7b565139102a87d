"""The ``wds:<pattern>`` image source: WebDataset tar shards.

``<pattern>`` is a shard path or fsspec URL (``s3://``, ``gs://``, ``https://`` ... whose fsspec
backend is installed), with brace expansion (``shard-{000000..000099}.tar``, the `braceexpand`
package of the ``data`` extra). A sample is the run of adjacent tar members sharing a key (the
member name up to the first dot of its base name, as WebDataset groups them); its image is the
member with an image extension (jpg, jpeg, png, webp first), its label the ``cls`` member (an
integer, or a class name) or the ``label``/``cls`` field of the ``json`` member.

The shards are indexed once when the source is opened (the tar headers only; the small label
members are read), with the stdlib `tarfile`: each sample's image is then read by its byte offset.
So vsae's guarantees hold as for folders: ``--max-images`` is a seeded sample over all shards, a
killed extraction resumes exactly at its image index (the index maps it to (shard, offset)), and
``--shard I/N`` or torchrun ranks each take a contiguous run of whole tar shards
(`vsae.data.schemes.shard_part`; more parts than tars is refused). Every sample is an item: one without an image or with a corrupt one is listed in the
store's ``skipped`` with the reason. (The `webdataset` package streams shards front to back; it
gives no member offsets, which random access and exact resume need.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from typing import IO, Any

from vsae.data.decode import IMAGE_EXTENSIONS, DecodeError
from vsae.data.image_sources import Source, source_scheme
from vsae.errors import VsaeError

PREFERRED = ("jpg", "jpeg", "png", "webp")  # the image of a sample that has several
_KEY_RE = re.compile(r"^((?:.*/|)[^./]+)\.([^/]*)$")  # WebDataset's key / extension split


def expand(pattern: str) -> list[str]:
    """The shard URLs of a pattern, with ``{a..b}`` / ``{x,y}`` brace expansion."""
    if "{" not in pattern:
        return [pattern]
    try:  # optional dependency (the `data` extra), imported only for a braced pattern
        from braceexpand import braceexpand
    except ImportError:
        raise VsaeError(
            "brace patterns in wds: need the `braceexpand` package; pip install 'vsae[data]'"
        ) from None
    return list(braceexpand(pattern))


def open_file(url: str) -> IO[bytes]:
    """A seekable binary file: a local path, or an fsspec URL through its installed backend."""
    if "://" not in url:
        return open(url, "rb")
    try:  # optional: only remote shards need fsspec
        import fsspec
    except ImportError:
        raise VsaeError(
            f"wds:{url}: reading URLs needs fsspec (pip install fsspec and its backend)"
        ) from None
    try:
        return fsspec.open(url, "rb").open()
    except (ImportError, ValueError) as e:
        raise VsaeError(f"wds:{url}: no fsspec backend for it ({e})") from None


@dataclass
class _Sample:
    key: str
    image: tuple[int, int, str] | None = None  # (data offset, size, extension)
    exts: list[str] = field(default_factory=list)
    label: str | int | None = None


def _label_of(ext: str, data: bytes) -> str | int | None:
    """The label in a ``cls`` member (an integer or a name) or a ``json`` member's label/cls field."""
    text = data.decode("utf-8", "replace").strip()
    if ext == "json":
        try:
            obj = json.loads(text)
        except ValueError:
            return None
        v = next((obj[k] for k in ("label", "cls") if isinstance(obj, dict) and k in obj), None)
        return v if isinstance(v, int | str) and not isinstance(v, bool) else None
    try:
        return int(text)
    except ValueError:
        return text or None


def _image_rank(ext: str) -> int:
    e = ext.lower()
    return PREFERRED.index(e) if e in PREFERRED else len(PREFERRED)


def index_shard(url: str) -> list[_Sample]:
    """The samples of one tar shard, in order (headers only; label members are read)."""
    samples: list[_Sample] = []
    try:
        with open_file(url) as f, tarfile.open(fileobj=f, mode="r:") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                hit = _KEY_RE.match(m.name)
                key, ext = (hit.group(1), hit.group(2)) if hit else (m.name, "")
                if not samples or samples[-1].key != key:
                    samples.append(_Sample(key))
                s = samples[-1]
                s.exts.append(ext)
                last = ext.rsplit(".", 1)[-1].lower()
                if f".{last}" in IMAGE_EXTENSIONS and (
                    s.image is None or _image_rank(last) < _image_rank(s.image[2])
                ):
                    s.image = (m.offset_data, m.size, last)
                elif last in ("cls", "json") and s.label is None and m.size <= 1 << 16:
                    member = tf.extractfile(m)
                    s.label = _label_of(last, member.read() if member else b"")
    except FileNotFoundError:
        raise VsaeError(f"wds: shard {url} does not exist; check the pattern") from None
    except tarfile.TarError as e:
        raise VsaeError(f"wds: shard {url} is not a readable tar ({e})") from None
    return samples


class WdsReader:
    """Item ``<shard url>#<key>`` -> the bytes of its image member (picklable; files opened lazily
    in each process)."""

    def __init__(self, locs: dict[str, tuple[str, int, int] | str]):
        self.locs = locs  # item -> (url, offset, size), or the reason it has no image
        self._files: dict[str, IO[bytes]] = {}
        self._pid = os.getpid()

    def __getstate__(self) -> dict[str, Any]:
        return {"locs": self.locs, "_files": {}, "_pid": -1}

    def __call__(self, item: str) -> bytes:
        loc = self.locs[item]
        if isinstance(loc, str):
            raise DecodeError(loc)
        url, offset, size = loc
        if self._pid != os.getpid():  # a forked DataLoader worker: never share the parent's file offsets
            self._files, self._pid = {}, os.getpid()
        f = self._files.get(url)
        if f is None:
            f = self._files[url] = open_file(url)
        f.seek(offset)
        data = f.read(size)
        if len(data) != size:
            raise DecodeError(f"truncated tar member ({len(data)} of {size} bytes)")
        return data


def _classes(raw: list[str | int | None]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Integer labels index classes "0".."max"; names are sorted into classes (as image lists)."""
    if all(v is None or isinstance(v, int) for v in raw):
        top = max((v for v in raw if isinstance(v, int)), default=-1)
        return tuple(v if isinstance(v, int) and v >= 0 else -1 for v in raw), tuple(
            str(i) for i in range(top + 1)
        )
    names = tuple(sorted({str(v) for v in raw if v is not None}))
    index = {c: i for i, c in enumerate(names)}
    return tuple(-1 if v is None else index[str(v)] for v in raw), names


@source_scheme("wds")
def open_wds(rest: str, n: int | None, seed: int) -> Source:
    """``wds:<pattern>`` -> a Source over every sample of every shard, in shard then tar order."""
    if not rest:
        raise VsaeError("wds: needs shards: wds:<path or URL>, e.g. wds:data/shard-{000000..000009}.tar")
    urls = expand(rest)
    items: list[str] = []
    counts: list[int] = []
    raw: list[str | int | None] = []
    locs: dict[str, tuple[str, int, int] | str] = {}
    digest = hashlib.sha256()
    for url in urls:
        samples = index_shard(url)
        counts.append(len(samples))
        for s in samples:
            item = f"{url}#{s.key}"
            if item in locs:
                raise VsaeError(f"wds: key {s.key} appears twice in {url}; its members must be adjacent")
            items.append(item)
            raw.append(s.label)
            if s.image is None:
                locs[item] = (
                    f"no image (jpg/png/webp) in the sample; it has: {', '.join(s.exts) or 'nothing'}"
                )
            else:
                locs[item] = (url, s.image[0], s.image[1])
            digest.update(f"{item}\0{locs[item]}\0{s.label}\n".encode())
    if not items:
        raise VsaeError(f"wds:{rest}: the shards hold no samples")
    labels, classes = _classes(raw)
    return Source(
        kind="wds",
        root=f"wds:{rest}",
        split=None,
        items=tuple(items),
        labels=labels,
        classes=classes,
        reader=WdsReader(locs),
        identity={"n_shards": len(urls), "shard_rows": counts, "index_sha256": digest.hexdigest()},
    )
