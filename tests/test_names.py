"""File names say what they hold, once (issue 24): no two modules of src/vsae share a file name,
except each sub-command's module in cli/ (named after its command) and the plug-in folders whose
file names are the registered names (sae/archs, sae/importers, data/schemes, models/families,
eval/explainers)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "vsae"
NAMED_BY_REGISTRY = ("cli", "sae/archs", "sae/importers", "data/schemes", "models/families", "eval/explainers")


def duplicated_names(src: Path) -> dict[str, list[str]]:
    """File name -> its paths under `src`, for names used more than once (outside the exemptions)."""
    where: dict[str, list[str]] = defaultdict(list)
    for p in src.rglob("*.py"):
        rel = p.relative_to(src).as_posix()
        if p.name in ("__init__.py", "__main__.py") or any(rel.startswith(d + "/") for d in NAMED_BY_REGISTRY):
            continue
        where[p.name].append(rel)
    return {name: sorted(paths) for name, paths in where.items() if len(paths) > 1}


def test_module_file_names_are_unique():
    dup = duplicated_names(SRC)
    assert not dup, f"file names used more than once: {dup}"


def test_the_check_sees_a_duplicate(tmp_path):
    for d in ("a", "b", "cli", "sae/archs", "eval"):
        (tmp_path / d).mkdir(parents=True)
    for f in ("a/config.py", "b/config.py", "cli/train.py", "eval/train.py", "sae/archs/topk.py"):
        (tmp_path / f).write_text("")
    assert duplicated_names(tmp_path) == {"config.py": ["a/config.py", "b/config.py"]}
