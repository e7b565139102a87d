"""Digest of vsae's outputs, to show a refactor changes no result (issue 24).

Runs, at one thread, a training sweep over every registered architecture, the fast demo,
`vsae steer diffusion` and `vsae steer mllm` on the shipped tiny models, then writes one
JSON mapping each output file to the SHA-256 of its bytes (JSON files: of their content with
paths, timings, versions and dates removed). Compare two digests with `--compare`.

    python scripts/outputs_digest.py run OUT            # writes OUT/digest.json
    python scripts/outputs_digest.py compare A.json B.json
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

VOLATILE = re.compile(r"(time|seconds|elapsed|timings|finished|started|created|machine|version|_s$|rows_per_s|date|host|pid)")
# the source tree of the vsae that wrote the outputs (shipped model paths are recorded in results)
_SRC = str(Path(__import__("vsae").__file__).resolve().parents[1])
SKIP_FILES = {"log.jsonl", "digest.json", ".vsae.lock"}
SKIP_SUFFIXES = {".html", ".png", ".log"}  # rendered views of the JSON / timings; compared via their JSON


def _normalise(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: _normalise(v, root) for k, v in sorted(value.items()) if not VOLATILE.search(k)}
    if isinstance(value, list):
        return [_normalise(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<OUT>").replace(_SRC, "<SRC>")
    return value


def _safetensors_blob(path: Path) -> bytes:
    """Tensor names, dtypes, shapes and bytes plus metadata; the global torch RNG state of an optimizer
    checkpoint (`rng.torch_cpu`) is left out: nothing seeds it, so it differs between identical runs."""
    from safetensors import safe_open

    h = hashlib.sha256()
    with safe_open(str(path), "pt") as f:
        h.update(json.dumps(f.metadata() or {}, sort_keys=True).encode())
        for key in sorted(f.keys()):
            if key == "rng.torch_cpu":
                continue
            t = f.get_tensor(key).contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes() if t.numel() else b"")
    return h.digest()


def digest_tree(root: Path, out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every output file under `root` (JSON normalised, paths under `out`
    written as <OUT>)."""
    hashes: dict[str, str] = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name in SKIP_FILES or path.suffix in SKIP_SUFFIXES or path.name.startswith(".vsae"):
            continue
        if path.suffix == ".json":
            try:
                data = _normalise(json.loads(path.read_text()), str(out))
            except ValueError:
                data = path.read_text()
            blob = json.dumps(data, sort_keys=True).encode()
        elif path.suffix == ".safetensors":
            blob = _safetensors_blob(path)
        else:
            blob = path.read_bytes()
        hashes[str(path.relative_to(root))] = hashlib.sha256(blob).hexdigest()
    return hashes


def _vsae(*args: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [str(Path(sys.executable).with_name("vsae")), *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def run(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    demo = out / "demo-fast"
    _vsae("demo", "--fast", "--out", str(demo), "--quiet")
    store = demo / "stores" / "clip" / "train" / "resid.1"
    if not store.exists():  # the layout of the fast demo's store
        store = next(p.parent for p in (demo / "stores" / "clip" / "train").rglob("manifest.json"))
    for arch in ("relu", "topk", "batchtopk", "jumprelu", "matryoshka"):
        k = ["--k", "8"] if arch in ("topk", "batchtopk", "matryoshka") else []  # relu, jumprelu: no --k
        _vsae("train", "--acts", str(store), "--arch", arch, "--expansion", "2", *k, "--steps", "40",
              "--batch-size", "128", "--val-rows", "0", "--seed", "3", "--out", str(out / "train" / arch))
    _vsae("steer", "diffusion", "--out", str(out / "steer-diffusion"), "--n-latents", "2", "--n-prompts", "2",
          "--n-eval", "8", "--discovery-latents", "3", "--discovery-prompts", "2", "--steps", "3", "--sweep", "1,8")
    _vsae("steer", "mllm", "--out", str(out / "steer-mllm"), "--n-latents", "2", "--n-images", "4",
          "--n-hai-images", "64", "--hai-k", "4", "--blank-latents", "2", "--quiet")
    digest = {part: digest_tree(out / part, out) for part in ("demo-fast", "train", "steer-diffusion", "steer-mllm")}
    (out / "digest.json").write_text(json.dumps(digest, indent=1, sort_keys=True))
    print(out / "digest.json")


def compare(a: Path, b: Path) -> int:
    da, db = json.loads(a.read_text()), json.loads(b.read_text())
    bad = 0
    for part in sorted(set(da) | set(db)):
        fa, fb = da.get(part, {}), db.get(part, {})
        for name in sorted(set(fa) | set(fb)):
            if fa.get(name) != fb.get(name):
                bad += 1
                state = "missing in B" if name not in fb else "missing in A" if name not in fa else "differs"
                print(f"{part}/{name}: {state}")
        print(f"{part}: {len(fa)} files in A, {len(fb)} in B")
    print("IDENTICAL" if bad == 0 else f"{bad} DIFFERENCES")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "digest":  # re-digest an existing run directory
        out = Path(sys.argv[2]).resolve()
        parts = ("demo-fast", "train", "steer-diffusion", "steer-mllm")
        (out / "digest.json").write_text(json.dumps({p: digest_tree(out / p, out) for p in parts}, indent=1))
    elif len(sys.argv) == 3 and sys.argv[1] == "run":
        run(Path(sys.argv[2]).resolve())
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
