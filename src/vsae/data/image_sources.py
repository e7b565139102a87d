"""Image and text sources: a deterministic, indexed list of items with optional class labels.

- A class-folder tree (ImageNet / iNaturalist layout): ``ROOT/<split>/<class>/**/<image>`` or
  ``ROOT/<class>/...`` without splits, or a flat folder of images (no labels). Classes are the
  sorted folder names; images are sorted by path inside each class.
- A list file: ``.txt`` with one path per line (optionally ``path<TAB>label``) or ``.csv`` with
  a header holding ``path`` and optionally ``label``. Relative paths resolve against the file.
- For text models, a ``.txt`` of prompts (one per line) or a ``.csv`` with a ``text`` column.
- ``<scheme>:<rest>``: a source registered in `SOURCE_SCHEMES` (``@source_scheme(name)`` on its
  opener), with the images in memory or read by the source's `reader`. The built-in schemes are
  the modules of `vsae.data.schemes` (``hf:`` Hugging Face datasets, ``wds:`` WebDataset shards),
  imported on first use; a plugin names its module or opener in the ``vsae.image_sources``
  entry-point group (vsae's own ``world:<split>[:<n>]``, the shapes world, is one: `vsae.world.source`). Core code opens every spec
  with `open_source` and knows no scheme by name.
The image index of an item is its position in this list; stores record it per row.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from vsae.data.class_taxonomy import Taxonomy, taxonomy_from_classes
from vsae.data.decode import IMAGE_EXTENSIONS
from vsae.errors import VsaeError, read_json, regular_file
from vsae.registry import Registry

if TYPE_CHECKING:
    from PIL import Image

SPLIT_NAMES = ("train", "val", "validation", "test")
SCHEMES_PACKAGE = "vsae.data.schemes"  # built-in schemes: one module each, found by file name
ENTRY_POINTS = "vsae.image_sources"  # plugins: name = scheme, value = module:opener


class ItemReader(Protocol):
    """The encoded bytes of a source's item (a tar member, a dataset cell), by its item id; raises
    `vsae.data.DecodeError` with the reason when the item holds no image. Picklable, so that
    DataLoader workers can read."""

    def __call__(self, item: str) -> bytes: ...


# Present in a folder while `vsae world export` writes it (a killed export leaves it): such a folder is refused.
INCOMPLETE_MARKER = ".vsae-incomplete"


@dataclass(frozen=True)
class Source:
    """An indexed list of items (image paths or prompts) with labels.

    Attributes
    ----------
    kind: "folder" | "list" | "text", or the scheme of a registered source ("world").
    root: the folder, list file or prompt file it was read from (the spec for a scheme).
    split: the split sub-folder used (None when the tree has no splits or for lists).
    items: image paths (absolute) or prompt strings, in index order (display ids for a scheme).
    labels: class index per item, -1 when unlabelled.
    classes: class names (sorted), indexable by label.
    images: the decoded images, in memory (a scheme source); None: decode `items`.
    records: per-item ground-truth attributes a scheme provides (JSON-able dicts), or None.
    reader: reads an item's encoded image (a scheme source that is not in memory); None: `items`
        are paths (or `images` holds them).
    identity: what identifies the content beyond `root` (e.g. a digest of a shard index), merged
        into `describe()` so that resuming on changed data is refused.
    """

    kind: str
    root: str
    split: str | None
    items: tuple[str, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    images: tuple[Image.Image, ...] | None = None
    records: tuple[dict[str, Any], ...] | None = None
    reader: ItemReader | None = None
    identity: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def modality(self) -> str:
        return "text" if self.kind == "text" else "image"

    @property
    def taxonomy(self) -> Taxonomy | None:
        """The iNaturalist-style taxonomy of the classes, if their names encode one."""
        return taxonomy_from_classes(self.classes)

    def pick(self, indices: list[int]) -> Source:
        """The items at `indices` (in that order), with the same class names."""
        return replace(
            self,
            items=tuple(self.items[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            images=None if self.images is None else tuple(self.images[i] for i in indices),
            records=None if self.records is None else tuple(self.records[i] for i in indices),
        )

    def describe(self) -> dict[str, Any]:
        """JSON-able identity of the source (recorded in store provenance)."""
        return {
            "kind": self.kind,
            "root": self.root,
            "split": self.split,
            "n_items": len(self),
            "n_classes": len(self.classes),
            **(self.identity or {}),
        }

    def table(self) -> dict[str, Any]:
        """Per-item table (items relative to the root for folders), classes and taxonomy as JSON."""
        items = list(self.items)
        if self.kind == "folder":
            base = Path(self.root) / self.split if self.split else Path(self.root)
            items = [str(Path(p).relative_to(base)) for p in items]
        tax = self.taxonomy
        return {
            **self.describe(),
            "items": items,
            "labels": list(self.labels),
            "classes": list(self.classes),
            "taxonomy": tax.to_json() if tax else None,
        }


def _is_image(p: Path) -> bool:
    """An image by name. Whatever the name points at (a FIFO, a dangling symlink, a symlink loop or
    to a device) is kept: decoding refuses it with the reason, so it is listed in `skipped`."""
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and not p.is_dir()


def _tree_images(top: Path) -> list[Path]:
    """Image paths under `top`, recursively (symlinked folders not followed), sorted by path.

    A folder that cannot be listed (permission denied) is returned itself, as an item, so that
    decoding names the reason and the store lists it in `skipped` instead of losing its images.
    """
    found: list[Path] = []

    def unreadable(e: OSError) -> None:
        found.append(Path(e.filename))

    for d, _, files in os.walk(top, onerror=unreadable):
        found += [p for p in (Path(d) / f for f in files) if _is_image(p)]
    return sorted(found)


def _subdirs(p: Path) -> list[Path]:
    return sorted((d for d in p.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)


def folder_source(root: str | Path, split: str | None = None) -> Source:
    """A class-folder tree, with `split` naming the split sub-folder when the tree has splits."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise VsaeError(f"data folder {root} does not exist; give an image folder or a .txt/.csv list")
    if any(os.path.lexists(d / INCOMPLETE_MARKER) for d in (root, root.parent)):  # DIR or DIR/<split>
        raise VsaeError(
            f"data folder {root} is an unfinished `vsae world export` (it holds {INCOMPLETE_MARKER}: the export "
            "was killed or is still running); delete the folder and export again"
        )
    subs = _subdirs(root)
    splits = [d.name for d in subs if d.name in SPLIT_NAMES]
    if split is not None:
        base = root / split
        if not base.is_dir():
            # every folder that holds class folders is a split (the world also has ood_background ...)
            have = [d.name for d in subs if _subdirs(d)] or splits
            if not have:
                raise VsaeError(
                    f"split {split!r} not found in {root}, which has no split folders; drop --split"
                )
            raise VsaeError(
                f"split {split!r} not found in {root} (splits: {', '.join(have)}); pass --split with one of them"
            )
    else:
        if splits:
            raise VsaeError(f"{root} has split folders ({', '.join(splits)}); choose one with --split")
        base = root
    classes = _subdirs(base)
    items: list[str] = []
    labels: list[int] = []
    if classes:
        for ci, cdir in enumerate(classes):
            for p in _tree_images(cdir):
                items.append(str(p))
                labels.append(ci)
        names = tuple(c.name for c in classes)
    else:
        items = [str(p) for p in sorted(base.iterdir()) if _is_image(p)]
        labels = [-1] * len(items)
        names = ()
    if not items:
        raise VsaeError(
            f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {base}; check --data/--split"
        )
    return Source("folder", str(root), split, tuple(items), tuple(labels), names)


def _label_table(raw: list[str | None]) -> tuple[tuple[int, ...], tuple[str, ...]]:
    classes = tuple(sorted({r for r in raw if r not in (None, "")}))
    index = {c: i for i, c in enumerate(classes)}
    return tuple(index[r] if r not in (None, "") else -1 for r in raw), classes


def _read_rows(path: Path, value_col: str) -> list[tuple[str, str | None]]:
    """(value, label) rows of a .txt (value[TAB label]) or .csv (header with value_col[, label])."""
    rows: list[tuple[str, str | None]] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or value_col not in reader.fieldnames:
                raise VsaeError(
                    f"{path}: CSV needs a header with a {value_col!r} column (and optionally 'label')"
                )
            for r in reader:
                if r[value_col]:
                    rows.append((r[value_col], r.get("label")))
        return rows
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n\r")
            if not line.strip() or line.startswith("#"):
                continue
            value, _, label = line.partition("\t")
            rows.append((value, label or None))
    return rows


def list_source(list_file: str | Path) -> Source:
    """Images named in a .txt or .csv list (see module docstring)."""
    path = Path(list_file).resolve()
    rows = _read_rows(path, "path")
    if not rows:
        raise VsaeError(f"{path} lists no images; one path per line, or a CSV with a 'path' column")
    items = tuple(str((path.parent / p).resolve()) if not Path(p).is_absolute() else p for p, _ in rows)
    labels, classes = _label_table([lab for _, lab in rows])
    return Source("list", str(path), None, items, labels, classes)


def text_source(prompt_file: str | Path) -> Source:
    """Prompts for text encoders: .txt one per line (optionally prompt<TAB>label), or .csv with 'text'."""
    path = regular_file(  # a FIFO would block the read: refused, as every reader of user files does
        Path(prompt_file).resolve(), "prompt file", "give a .txt (one prompt a line) or .csv with 'text'"
    )
    rows = _read_rows(path, "text")
    if not rows:
        raise VsaeError(f"{path} holds no prompts")
    labels, classes = _label_table([lab for _, lab in rows])
    return Source("text", str(path), None, tuple(t for t, _ in rows), labels, classes)


SchemeOpener = Callable[..., Source]
# the --data options a scheme may take, by keyword, and their flags (for the error naming one)
OPTION_FLAGS = {"split": "--split", "image_column": "--image-column", "label_column": "--label-column"}
_SCHEME_RE = re.compile(r"^([a-z][a-z0-9_]+):(.*)$")


@dataclass(frozen=True)
class SourceScheme:
    """A registered ``<scheme>:<rest>`` image source.

    Attributes
    ----------
    opener: ``opener(rest, n, seed, **opts) -> Source`` (n: how many items the caller wants, None
        when it did not say; seed: for sampled sources; opts: those of `options` the user gave).
    options: the --data options it takes (keys of OPTION_FLAGS: split, image_column,
        label_column); giving another one is refused.
    """

    opener: SchemeOpener
    options: tuple[str, ...] = ()


SOURCE_SCHEMES: Registry[SourceScheme] = Registry("image source scheme", ENTRY_POINTS, SCHEMES_PACKAGE)
"""The image-source schemes (`vsae.registry.Registry`): built-in modules of `vsae.data.schemes`,
plug-ins through the entry points ``vsae.image_sources``."""


def source_scheme(
    name: str, options: tuple[str, ...] = (), *, replace: bool = False
) -> Callable[[SchemeOpener], SchemeOpener]:
    """Decorator making ``<name>:<rest>`` an image source opened by the decorated opener
    (`SourceScheme`); a name taken by another opener is refused unless `replace`."""
    if not re.fullmatch(r"[a-z][a-z0-9_]+", name):
        raise VsaeError(f"source scheme {name!r}: use lowercase letters, digits and _ (2+ characters)")
    unknown = set(options) - set(OPTION_FLAGS)
    if unknown:
        raise VsaeError(
            f"source scheme {name!r}: unknown options {sorted(unknown)}; use {sorted(OPTION_FLAGS)}"
        )

    def deco(opener: SchemeOpener) -> SchemeOpener:
        scheme = SourceScheme(opener, tuple(options))
        if SOURCE_SCHEMES.registered().get(name) != scheme:  # the same registration again is no change
            SOURCE_SCHEMES.register(name, replace=replace)(scheme)
        return opener

    return deco


def register_source_scheme(
    name: str, opener: SchemeOpener, options: tuple[str, ...] = (), *, replace: bool = False
) -> None:
    """``source_scheme(name, options)(opener)``, for an opener defined elsewhere."""
    source_scheme(name, options, replace=replace)(opener)


def source_schemes() -> list[str]:
    """The scheme names: registered, built-in (`vsae.data.schemes`) and plugins (entry points)."""
    return SOURCE_SCHEMES.names()


def _find_scheme(name: str) -> SourceScheme | None:
    """The scheme `name`: registered, else a built-in module or plugin imported now (a module
    registers itself; an entry point naming an opener, ``pkg.mod:opener``, registers that opener)."""
    found: object = SOURCE_SCHEMES.find(name)
    if found is not None and not isinstance(found, SourceScheme):
        if not callable(found):
            raise VsaeError(f"image source plug-in {name!r} names {found!r}, not an opener")
        found = SourceScheme(found)
        SOURCE_SCHEMES.register(name, replace=True)(found)
    return found


def scheme_of(data: str | Path) -> str | None:
    """The scheme of a ``<scheme>:<rest>`` spec (registered or not), None for a path."""
    m = _SCHEME_RE.match(str(data))
    return m.group(1) if m and not Path(data).exists() else None


def open_scheme(spec: str, n: int | None = None, seed: int = 0, **opts: str | None) -> Source:
    """Open a ``<scheme>:<rest>`` spec with its registered opener (`opts`: --split, --image-column,
    --label-column; those left None are not passed)."""
    name, _, rest = spec.partition(":")
    scheme = _find_scheme(name)
    if scheme is None:
        have = ", ".join(f"{s}:" for s in source_schemes()) or "none"
        raise VsaeError(
            f"unknown image source {name}: in {spec!r} (registered: {have}); install the package that "
            "provides it (entry points vsae.image_sources), or give a folder or list file"
        )
    given = {k: v for k, v in opts.items() if v is not None}
    for k in given:
        if k not in scheme.options:
            where = "folder trees" if k == "split" else "hf: datasets"
            raise VsaeError(f"{OPTION_FLAGS[k]} applies to {where}, not to {spec}; drop {OPTION_FLAGS[k]}")
    return scheme.opener(rest, n, seed, **given)


def open_source(
    data: str | Path,
    split: str | None = None,
    modality: str = "image",
    n: int | None = None,
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Source:
    """Open --data: a folder tree or a list file for images, a prompt file for text models, or a
    registered ``<scheme>:<rest>`` source (`n`, `seed`: how many items it makes, and its seed;
    `split`, `image_column`, `label_column`: for the schemes that take them, e.g. ``hf:``)."""
    if scheme_of(data) is not None:
        src = open_scheme(
            str(data), n, seed, split=split, image_column=image_column, label_column=label_column
        )
        if src.modality != modality:
            raise VsaeError(f"--data {data} is a {src.modality} source; this model reads {modality}")
        return src
    if image_column is not None or label_column is not None:
        raise VsaeError(
            "--image-column/--label-column apply to hf: datasets, not to folders or lists; drop them"
        )
    p = Path(data)
    if modality == "text":
        if split is not None:
            raise VsaeError("--split applies to image folder trees, not to prompt files; drop --split")
        return text_source(p)
    if p.is_dir():
        return folder_source(p, split)
    if p.is_file() and p.suffix.lower() in (".txt", ".csv", ".tsv", ".lst"):
        if split is not None:
            raise VsaeError("--split applies to folder trees, not to list files; drop --split")
        return list_source(p)
    raise VsaeError(f"--data {data}: not a folder or a .txt/.csv list of images")


def open_source_early(
    data: str | Path,
    split: str | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> Source | None:
    """Open --data before the model is loaded, as far as that is possible without knowing the
    model's modality, so that a bad --data/--split fails at once.

    A folder is opened as an image tree (only image models read folders); a file is an image list
    or a prompt file depending on the model, so only what is wrong either way is checked (it must
    exist and take no --split), and None is returned. A registered scheme is opened (as images)."""
    if scheme_of(data) is not None or image_column is not None or label_column is not None:
        return open_source(data, split, image_column=image_column, label_column=label_column)
    p = Path(data)
    if p.is_dir():
        return folder_source(p, split)
    if not p.exists():
        raise VsaeError(
            f"--data {data} does not exist; give an image folder, a .txt/.csv image list or a prompt file"
        )
    if split is not None:
        raise VsaeError("--split applies to image folder trees, not to list or prompt files; drop --split")
    return None


def load_table(path: str | Path, need_items: bool = False) -> dict[str, Any]:
    """Read the `images.json` table that extraction writes next to a store's manifest; `items`
    (the image paths) may be absent from a labels-only table unless `need_items`."""
    p = Path(path)
    p = p / "images.json" if p.is_dir() else p
    fix = "give the images.json `vsae extract` wrote beside the store's manifest"
    t = read_json(p, "image table", fix)
    if not isinstance(t, dict) or not isinstance(t.get("items", None if need_items else []), list):
        raise VsaeError(f"image table {p} is not an object with an 'items' list; {fix}")
    for key in ("labels", "classes"):
        if not isinstance(t.get(key) or [], list):
            raise VsaeError(f"image table {p}: '{key}' is not a list; {fix}")
    return t
