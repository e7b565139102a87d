"""The import contract (.importlinter at the repository root): core never imports the top layer
(world, demo, report, serve, cli), the layers only point down, and no package has an import
cycle. Imports inside functions and under TYPE_CHECKING count (grimp reads them all)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    assert lint.exists(), f"{lint} missing: pip install import-linter"
    r = subprocess.run(
        [str(lint), str(ROOT / ".importlinter"), "--no-cache", "--no-logo"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout, r.stdout[-2000:]
