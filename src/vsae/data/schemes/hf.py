"""The ``hf:<dataset>[:<config>]`` image source: a Hugging Face `datasets` dataset.

``<dataset>`` is a directory written by ``save_to_disk`` (read with ``load_from_disk``), any other
local directory or hub id ``load_dataset`` reads (Arrow, Parquet, image folders; the hub only when
online), with ``--split`` choosing the split of a dataset dict (optional when it has one split).
The image column is the one ``Image`` feature and the label column the one ``ClassLabel``
(``--image-column`` / ``--label-column`` name them when there are several); class names are the
``ClassLabel``'s names (an ImageNet dataset's wnids then feed ``eval hierarchy --wordnet``).

Items are the dataset's rows in order (``<split>/<row>``); each row's image is read by row index
from the memory-mapped Arrow table and decoded by `vsae.data.decode.decode_bytes`, so random access
gives vsae's seeded ``--max-images`` sample over the whole dataset and an exact resume by image
index, and a missing or corrupt image is a skipped item with its reason. Needs the ``data`` extra
(``pip install 'vsae[data]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vsae.data.decode import DecodeError
from vsae.data.image_sources import Source, source_scheme
from vsae.errors import VsaeError


def _datasets() -> Any:
    try:  # optional dependency (the `data` extra), imported only when an hf: source is opened
        import datasets
    except ImportError:
        raise VsaeError("hf: sources need the `datasets` package; pip install 'vsae[data]'") from None
    return datasets


def parse_spec(rest: str) -> tuple[str, str | None]:
    """``<dataset>[:<config>]`` -> (dataset, config); an existing path is never split."""
    if not rest:
        raise VsaeError("hf: needs a dataset: hf:<saved dataset dir | local data dir | hub id>[:<config>]")
    if Path(rest).exists() or ":" not in rest:
        return rest, None
    name, _, config = rest.rpartition(":")
    return name, config or None


def load(name: str, config: str | None, split: str | None, streaming: bool = False) -> Any:
    """The `datasets.Dataset` (an `IterableDataset` when `streaming`) of (name, config, split) and
    its split name; one-line errors for what is wrong."""
    ds_mod = _datasets()
    p = Path(name)
    scheme = "hf_stream" if streaming else "hf"
    saved = p.is_dir() and ((p / "dataset_dict.json").is_file() or (p / "state.json").is_file())
    try:
        if saved and streaming:
            raise VsaeError(f"hf_stream:{name} is a saved dataset; read it with hf:{name} (random access)")
        if saved:
            if config is not None:
                raise VsaeError(f"hf:{name} is a saved dataset; it has no configs, drop :{config}")
            obj = ds_mod.load_from_disk(str(p))
        else:
            obj = ds_mod.load_dataset(name, config, streaming=streaming)
    except VsaeError:
        raise
    except Exception as e:  # datasets' own errors: not found, offline, no data files ...
        raise VsaeError(
            f"{scheme}:{name}: cannot load the dataset ({type(e).__name__}: {str(e)[:200]})"
        ) from None
    if not streaming and isinstance(obj, ds_mod.IterableDataset | ds_mod.IterableDatasetDict):
        raise VsaeError(f"hf:{name} is an iterable (streamed) dataset; read it with hf_stream:{name}")
    if isinstance(obj, ds_mod.DatasetDict | ds_mod.IterableDatasetDict):
        splits = sorted(obj)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in obj:
            raise VsaeError(f"{scheme}:{name} has splits {', '.join(splits)}; choose one with --split")
        return obj[split], split
    if split is not None:
        raise VsaeError(f"{scheme}:{name} is a single dataset without splits; drop --split")
    return obj, None


def _pick_column(features: dict[str, Any], kind: type, given: str | None, flag: str, name: str) -> str | None:
    """The column named by `flag`, else the one column whose feature is `kind` (None if none)."""
    if given is not None:
        if given not in features:
            raise VsaeError(f"{flag} {given}: hf:{name} has columns {', '.join(features)}")
        return given
    found = [c for c, f in features.items() if isinstance(f, kind)]
    if len(found) > 1:
        raise VsaeError(
            f"hf:{name} has several {kind.__name__} columns ({', '.join(found)}); choose with {flag}"
        )
    return found[0] if found else None


def _labels(ds: Any, col: str | None) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Per-row class index and class names of a map-style dataset's label column."""
    if col is None:
        return (-1,) * len(ds), ()
    return label_table(ds.features[col], list(ds[col]))


def label_table(feat: Any, raw: list[Any]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Per-row class index and class names of a label column's values: a ClassLabel's names, or an
    int / string column's values."""
    if isinstance(feat, _datasets().ClassLabel):
        return tuple(-1 if v is None else int(v) for v in raw), tuple(feat.names)
    if all(isinstance(v, int) or v is None for v in raw):
        top = max((v for v in raw if v is not None), default=-1)
        return tuple(-1 if v is None else int(v) for v in raw), tuple(str(i) for i in range(top + 1))
    names = tuple(sorted({str(v) for v in raw if v not in (None, "")}))
    index = {c: i for i, c in enumerate(names)}
    return tuple(index[str(v)] if v not in (None, "") else -1 for v in raw), names


class HfReader:
    """Item ``<split>/<row>`` -> the encoded image bytes of that row (picklable: DataLoader workers)."""

    def __init__(self, ds: Any, column: str):
        feat = _datasets().Image(decode=False)
        self.ds = ds.select_columns([column]).cast_column(column, feat)
        self.column = column

    def __call__(self, item: str) -> bytes:
        return cell_bytes(self.ds[int(item.rpartition("/")[2])][self.column])


def cell_bytes(cell: dict[str, Any] | None) -> bytes:
    """The encoded image of an undecoded ``Image`` cell: its bytes, else the file at its path (a
    local path, or a URL read through fsspec: a streamed image folder's cells hold only paths)."""
    if cell is None:
        raise DecodeError("no image in this row")
    if cell.get("bytes"):
        return bytes(cell["bytes"])
    path = cell.get("path")
    if not path:
        raise DecodeError("no image in this row (neither bytes nor a path)")
    try:
        if "://" in path or "::" in path:
            import fsspec  # a dependency of `datasets`

            with fsspec.open(path, "rb") as f:
                return bytes(f.read())
        return Path(path).read_bytes()
    except (OSError, ValueError) as e:
        raise DecodeError(f"image file {path} unreadable ({getattr(e, 'strerror', None) or e})") from None


@source_scheme("hf", options=("split", "image_column", "label_column"))
def open_hf(
    rest: str,
    n: int | None,
    seed: int,
    split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Source:
    """``hf:<dataset>[:<config>]`` -> a Source over the dataset's rows (`n`, `seed` unused: the
    caller's --max-images samples from the whole dataset)."""
    name, config = parse_spec(rest)
    ds, split = load(name, config, split)
    mod = _datasets()
    feats = dict(ds.features)
    img_col = _pick_column(feats, mod.Image, image_column, "--image-column", name)
    if img_col is None:
        raise VsaeError(
            f"hf:{name} has no Image column (columns: {', '.join(feats)}); name it with --image-column"
        )
    lab_col = _pick_column(feats, mod.ClassLabel, label_column, "--label-column", name)
    labels, classes = _labels(ds, lab_col)
    tag = split or "rows"
    if len(ds) == 0:
        raise VsaeError(f"hf:{name} split {tag} has no rows")
    return Source(
        kind="hf",
        root=f"hf:{rest}",
        split=split,
        items=tuple(f"{tag}/{i}" for i in range(len(ds))),
        labels=labels,
        classes=classes,
        reader=HfReader(ds, img_col),
        identity={
            "fingerprint": getattr(ds, "_fingerprint", None),
            "image_column": img_col,
            "label_column": lab_col,
        },
    )
