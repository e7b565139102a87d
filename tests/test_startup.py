"""The CLI starts without importing torch where it does not need it (times are in bench/cli.py)."""

import json
import subprocess
import sys

import numpy as np
import torch

from vsae.store import StoreWriter

PROBE = """
import sys
from vsae.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in ("torch", "transformers", "sklearn", "matplotlib") if m in sys.modules)),
      file=sys.stderr)
"""


def heavy_imports(*args: str, cwd=None) -> tuple[list[str], str]:
    r = subprocess.run(
        [sys.executable, "-c", "import json\n" + PROBE, *args], capture_output=True, text=True, cwd=cwd
    )
    return json.loads(r.stderr.strip().splitlines()[-1]), r.stdout


def test_store_info_reads_manifests_without_torch(tmp_path):
    w = StoreWriter.create_or_resume(tmp_path / "s", d=4, dtype="float16", provenance={"hook": "resid.1"})
    w.add(torch.randn(10, 4), np.arange(10), np.zeros(10, np.int64))
    w.mark_images_done(10)
    w.close()
    mods, out = heavy_imports("store", "info", str(tmp_path / "s"))
    assert mods == []
    assert "10 x 4 float16 (dense), 1 shards" in out and "hook      resid.1" in out
    mods, out = heavy_imports("store", "info", "--json", str(tmp_path / "s"))
    s = json.loads(out)
    assert (s["rows"], s["d"], s["dtype"], s["complete"], s["images_done"]) == (10, 4, "float16", True, 10)


def test_help_and_import_vsae_stay_light():
    from vsae.cli import COMMANDS

    # `vsae train --help` lists each architecture's options, declared beside the architecture's
    # (torch) code in its file (vsae/sae/archs/<name>.py): it alone imports torch.
    for args in (["--help"], ["world", "info"], *([name, "--help"] for name in COMMANDS)):
        mods, out = heavy_imports(*args)
        assert mods == ([] if args != ["train", "--help"] else ["torch"]), (args, mods)
        assert out
    r = subprocess.run(
        [sys.executable, "-c", "import sys, vsae; dir(vsae); print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == "False"


def test_wrong_paths_fail_before_torch_is_imported(tmp_path):
    for args in (
        ["train", "--acts", str(tmp_path / "nope"), "--steps", "1", "--out", str(tmp_path / "r")],
        [
            "encode",
            "--sae",
            str(tmp_path / "nope"),
            "--acts",
            str(tmp_path / "x"),
            "--out",
            str(tmp_path / "z"),
        ],
        ["store", "info", str(tmp_path / "nope")],
    ):
        r = subprocess.run(
            [sys.executable, "-c", "import json\n" + PROBE, *args], capture_output=True, text=True
        )
        *err, mods = r.stderr.strip().splitlines()
        assert json.loads(mods) == [], args
        assert len(err) == 1 and err[0].startswith("error: ") and "nope" in err[0], (args, err)
