"""Class hierarchies for the hierarchy metrics: root-first paths per class, plus the DAG of nodes.

Sources: iNaturalist folder names (`NNNNN_Kingdom_Phylum_Class_Order_Family_Genus_species`,
7 levels; parsed by `vsae.data.class_taxonomy`), a JSON (`vsae.data.class_taxonomy.Taxonomy.load`) or CSV
class -> path file, and WordNet 3.0 for ImageNet wnids (read from the local database of Debian's
`wordnet-base`, /usr/share/wordnet). Tree taxonomies become a `ClassHierarchy` whose nodes are the
path prefixes; WordNet gives a DAG.

WordNet is read directly from its documented `data.noun` format (wndb(5WN)): the first field of
each synset line is its byte offset in the file, so a synset is one `seek` + `readline`, and its
hypernyms are the `@` / `@i` pointers. (nltk's WordNetCorpusReader refuses the Debian directory:
nltk >= 3.9 restricts corpus paths to its own data dirs and the Debian package lacks `lexnames`.)
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vsae.data.class_taxonomy import Taxonomy as DataTaxonomy
from vsae.data.class_taxonomy import inat_path, taxonomy_from_classes
from vsae.errors import VsaeError, regular_file
from vsae.registry import Registry

DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
PATH_SEPARATOR = "/"


@dataclass(frozen=True)
class ClassHierarchy:
    """A class hierarchy (tree or DAG).

    Attributes
    ----------
    paths : class name -> root-first tuple of node ids ending at the class's own node. For a tree
        this is the unique path; for a DAG (WordNet) the longest hypernym path (ties: smallest ids).
    parents : node id -> parent node ids (the whole DAG over all ancestors of the classes).
    labels : node id -> readable name.
    source : where it came from (for the outputs).
    """

    paths: dict[str, tuple[str, ...]]
    parents: dict[str, tuple[str, ...]]
    labels: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def check_classes(self, classes: Iterable[str], where: str = "the labels") -> None:
        """VsaeError naming both sides when classes are missing from the taxonomy."""
        missing = [c for c in classes if c not in self.paths]
        if missing:
            show = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise VsaeError(
                f"{len(missing)} classes of {where} are missing from the taxonomy ({self.source}): {show}; "
                "give a taxonomy that covers every class"
            )

    def class_node(self, name: str) -> str:
        """The node id of class ``name`` (the last node of its path)."""
        return self.paths[name][-1]

    def name(self, node: str) -> str:
        """The readable name of ``node``."""
        return self.labels.get(node, node)


def _tree_from_paths(levels: Mapping[str, Sequence[str]], source: str) -> ClassHierarchy:
    """A tree taxonomy from level names; node ids are the '/'-joined prefixes."""
    paths: dict[str, tuple[str, ...]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    labels: dict[str, str] = {}
    for cls, lv in levels.items():
        lv = [str(x) for x in lv if str(x) != ""]
        if not lv:
            raise VsaeError(f"class {cls!r} has an empty taxonomy path in {source}")
        nodes = tuple(PATH_SEPARATOR.join(lv[: i + 1]) for i in range(len(lv)))
        paths[str(cls)] = nodes
        for i, node in enumerate(nodes):
            parents.setdefault(node, (nodes[i - 1],) if i else ())
            labels.setdefault(node, lv[i])
    return ClassHierarchy(paths=paths, parents=parents, labels=labels, source=source)


def from_paths(levels: Mapping[str, Sequence[str]], source: str = "class paths") -> ClassHierarchy:
    """A tree taxonomy from `{class: [root, ..., leaf]}` level names (in memory)."""
    return _tree_from_paths(levels, source)


@dataclass(frozen=True)
class AttributeTaxonomy:
    """A taxonomy over the values of one image attribute, each image labelled by the value of that
    attribute in its attributes.json record (e.g. the shapes world's colour families: ``vsae eval
    hierarchy --taxonomy world-colour``). Registered by name with `register_attribute_taxonomy`.

    Attributes
    ----------
    attribute: the attributes.json field whose value labels each image.
    paths: value -> root-first level names ending at the value, in class-index order.
    source: what the taxonomy is (for the outputs).
    """

    attribute: str
    paths: Mapping[str, Sequence[str]]
    source: str

    @property
    def values(self) -> list[str]:
        """The attribute values (the classes), in class-index order."""
        return list(self.paths)

    def hierarchy(self) -> ClassHierarchy:
        """The values' tree as a `ClassHierarchy`."""
        return from_paths(self.paths, self.source)


ATTRIBUTE_TAXONOMIES: Registry[AttributeTaxonomy] = Registry(
    "attribute taxonomy", "vsae.attribute_taxonomies"
)
"""The attribute taxonomies by name (`vsae.registry.Registry`), usable as ``--taxonomy NAME`` of
`vsae eval hierarchy`; plug-ins through the entry points ``vsae.attribute_taxonomies`` (vsae's own
``world-colour = vsae.world.taxonomy``: core code never imports the world)."""


def register_attribute_taxonomy(name: str, taxonomy: AttributeTaxonomy, *, replace: bool = False) -> None:
    """``ATTRIBUTE_TAXONOMIES.register(name)(taxonomy)``: refused when ``name`` is taken by another
    taxonomy (unless `replace`)."""
    if ATTRIBUTE_TAXONOMIES.registered().get(name) != taxonomy:  # the same one again is no change
        ATTRIBUTE_TAXONOMIES.register(name, replace=replace)(taxonomy)


def attribute_taxonomy(name: str) -> AttributeTaxonomy | None:
    """The attribute taxonomy registered as ``name`` (importing its plug-in), or None."""
    return ATTRIBUTE_TAXONOMIES.find(name)


def from_taxonomy(tax: DataTaxonomy, source: str) -> ClassHierarchy:
    """The tree of a `vsae.data.class_taxonomy.Taxonomy` (class -> root-first level names)."""
    return _tree_from_paths(dict(tax.paths), source)


def from_inat_names(folder_names: Iterable[str]) -> ClassHierarchy:
    """iNaturalist-style folder names `NNNNN_level_..._leaf` (iNat 2021: 7 levels)."""
    names = list(folder_names)
    tax = taxonomy_from_classes(names)
    if tax is None:
        bad = next(n for n in names if inat_path(n) is None) if names else "(no classes)"
        raise VsaeError(f"{bad!r} is not an iNaturalist folder name (NNNNN_Kingdom_Phylum_..._Genus_species)")
    return from_taxonomy(tax, "iNaturalist folder names")


def from_file(path: str | os.PathLike) -> ClassHierarchy:
    """A class -> path file. JSON: `{"class": ["root", ..., "leaf"]}`.
    CSV: rows `class,path` with '/'-separated levels (a header row `class,path` is allowed)."""
    p = regular_file(path, "taxonomy file", "give a .json or .csv class -> path file")
    levels: dict[str, list[str]] = {}
    if p.suffix.lower() == ".json":
        return from_taxonomy(DataTaxonomy.load(p), f"file {p.name}")
    elif p.suffix.lower() == ".csv":
        with p.open(newline="") as f:
            for i, row in enumerate(csv.reader(f)):
                if not row or (i == 0 and [c.strip().lower() for c in row[:2]] == ["class", "path"]):
                    continue
                if len(row) < 2:
                    raise VsaeError(f"taxonomy CSV {p} line {i + 1}: expected `class,path`")
                levels[row[0].strip()] = row[1].strip().split(PATH_SEPARATOR)
    else:
        raise VsaeError(f"taxonomy file {p} must be .json or .csv")
    return _tree_from_paths(levels, f"file {p.name}")


class WordNetNouns:
    """Noun synsets of a local WordNet 3.0 database, read lazily from `data.noun` by offset."""

    def __init__(self, wordnet_dir: str | os.PathLike = DEFAULT_WORDNET_DIR):
        self.path = Path(wordnet_dir) / "data.noun"
        if not self.path.is_file():
            raise VsaeError(
                f"no WordNet database at {wordnet_dir} (data.noun missing); install it with "
                "`apt-get install -y wordnet-base` or pass the directory that holds data.noun"
            )
        self._cache: dict[int, tuple[str, tuple[int, ...]]] = {}
        self._f = self.path.open("rb")

    def close(self) -> None:
        self._f.close()

    def synset(self, offset: int) -> tuple[str, tuple[int, ...]]:
        """(first lemma, hypernym offsets) of the noun synset at `offset`."""
        if offset in self._cache:
            return self._cache[offset]
        self._f.seek(offset)
        line = self._f.readline().decode("utf-8", errors="replace")
        fields = line.split(" ")
        if not fields or not fields[0].isdigit() or int(fields[0]) != offset:
            raise VsaeError(f"n{offset:08d} is not a WordNet 3.0 noun synset (wnid) in {self.path}")
        w_cnt = int(fields[3], 16)
        lemma = fields[4]
        i = 4 + 2 * w_cnt
        p_cnt = int(fields[i])
        hyper = []
        for j in range(p_cnt):
            sym, off, pos = fields[i + 1 + 4 * j : i + 4 + 4 * j]
            if sym in ("@", "@i") and pos == "n":
                hyper.append(int(off))
        out = (lemma, tuple(hyper))
        self._cache[offset] = out
        return out


def wnid_offset(wnid: str) -> int:
    if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
        raise VsaeError(f"{wnid!r} is not an ImageNet wnid (n followed by 8 digits)")
    return int(wnid[1:])


def from_wordnet(
    wnids: Iterable[str], wordnet_dir: str | os.PathLike = DEFAULT_WORDNET_DIR
) -> ClassHierarchy:
    """WordNet noun hierarchy (a DAG) over the given ImageNet wnids and all their hypernyms."""
    wn = WordNetNouns(wordnet_dir)
    try:
        parents: dict[str, tuple[str, ...]] = {}
        labels: dict[str, str] = {}
        stack = [wnid_offset(w) for w in wnids]
        while stack:
            off = stack.pop()
            node = f"n{off:08d}"
            if node in parents:
                continue
            lemma, hyper = wn.synset(off)
            parents[node] = tuple(f"n{h:08d}" for h in hyper)
            labels[node] = lemma
            stack.extend(hyper)
    finally:
        wn.close()
    best: dict[str, tuple[str, ...]] = {}

    def longest(node: str) -> tuple[str, ...]:
        # Longest root-first path; ties broken by the lexicographically smallest path.
        if node not in best:
            cands = [longest(p) + (node,) for p in parents[node]] or [(node,)]
            best[node] = min(cands, key=lambda c: (-len(c), c))
        return best[node]

    paths = {w: longest(w) for w in wnids}
    return ClassHierarchy(paths=paths, parents=parents, labels=labels, source=f"WordNet 3.0 at {wordnet_dir}")
