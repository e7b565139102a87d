"""No function in src/ is over 120 lines or above cyclomatic complexity 30 (issue 24).

Length: from the `def` line to the function's last line (decorators not counted), for every function,
method and nested function, measured on the AST. Complexity: McCabe's, as ruff's C901 counts it
(nested functions count in their enclosing function). Each test lists every offender with its place.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 120
MAX_COMPLEXITY = 30


def long_functions(root: Path, limit: int) -> list[str]:
    """`path:line name (N lines)` for every function under `root` longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return found


def complex_functions(root: Path, limit: int) -> list[str]:
    """`path:line message` for every function under `root` above McCabe complexity `limit` (ruff C901)."""
    cmd = [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "C901"]
    cmd += ["--config", f"lint.mccabe.max-complexity={limit}", "--output-format", "json", str(root)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode in (0, 1), done.stderr  # 1: violations found; anything else: ruff failed
    return [
        f"{Path(d['filename']).relative_to(root)}:{d['location']['row']} {d['message']}"
        for d in json.loads(done.stdout)
    ]


def test_no_function_over_120_lines() -> None:
    offenders = long_functions(SRC, MAX_LINES)
    assert not offenders, f"{len(offenders)} function(s) over {MAX_LINES} lines:\n" + "\n".join(offenders)


def test_no_function_above_complexity_30() -> None:
    offenders = complex_functions(SRC, MAX_COMPLEXITY)
    assert not offenders, f"{len(offenders)} function(s) above complexity {MAX_COMPLEXITY}:\n" + "\n".join(
        offenders
    )


def test_the_measures_see_long_and_branchy_functions(tmp_path: Path) -> None:
    """Both measures find a function just over the limit and pass one at it."""
    limit = 3
    branches = "".join(f"    if x == {i}:\n        return {i}\n" for i in range(limit))  # complexity limit+1
    (tmp_path / "m.py").write_text(
        f"def branchy(x):\n{branches}    return -1\n\n\ndef short(x):\n    y = x\n    return y\n"
    )
    assert long_functions(tmp_path, 2 * limit + 1) == [f"m.py:1 branchy ({2 * limit + 2} lines)"]
    assert long_functions(tmp_path, 2 * limit + 2) == []
    found = complex_functions(tmp_path, limit)
    assert len(found) == 1 and found[0].startswith("m.py:1 ") and "branchy" in found[0], found
    assert complex_functions(tmp_path, limit + 1) == []
