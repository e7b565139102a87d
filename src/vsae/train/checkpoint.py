"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else.

Layout of a run directory ``RUN``::

    RUN/train_state.json              {"format": "vsae-train", "step": s, "names": [...], ...}
    RUN/<name>/ckpt-<step>/weights.safetensors   SAE state (normalised space) + dead-latent counters
    RUN/<name>/ckpt-<step>/optim.safetensors     optimizer tensors + RNG states
    RUN/<name>/ckpt-<step>/state.json            optimizer scalars, param groups, SAE config

``train_state.json`` is replaced atomically after every SAE's checkpoint is complete, so a
run killed at any moment resumes from the last step all of them reached; older checkpoint
directories are removed only afterwards.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vsae.errors import VsaeError
from vsae.sae.io import save_tensors_atomic, write_json_atomic

STATE = "train_state.json"
FORMAT = "vsae-train"


def ckpt_dir(run_dir: Path, name: str, step: int) -> Path:
    return run_dir / name / f"ckpt-{step:09d}"


def optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (safetensors) and JSON scalars."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for key, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = v
            else:
                scalars[f"{idx}.{key}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def optimizer_from_files(
    opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for key, v in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    opt.load_state_dict({"state": state, "param_groups": groups})


def rng_tensors() -> dict[str, torch.Tensor]:
    out = {"rng.torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["rng.torch_cuda"] = torch.cuda.get_rng_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor]) -> None:
    if "rng.torch_cpu" in tensors:
        torch.set_rng_state(tensors["rng.torch_cpu"])
    if "rng.torch_cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.torch_cuda"])


def save_sae_checkpoint(
    d: Path, weights: dict[str, torch.Tensor], opt: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    """Write one SAE checkpoint; a failed write (disk full ...) removes its temporaries and is one line.

    The run's last committed checkpoint is untouched, so `--resume` after freeing space is exact.
    """
    try:
        _save_sae_checkpoint(d, weights, opt, state)
    except (OSError, SafetensorError) as e:
        for tmp in d.glob("*.tmp") if d.is_dir() else ():
            tmp.unlink(missing_ok=True)
        msg = getattr(e, "strerror", None) or (str(e).splitlines() or [type(e).__name__])[0][:120]
        raise VsaeError(
            f"cannot write checkpoint {d} ({msg}); free disk space and rerun with --resume "
            "(it continues exactly from the last complete checkpoint)"
        ) from None


def _save_sae_checkpoint(
    d: Path, weights: dict[str, torch.Tensor], opt: torch.optim.Optimizer, state: dict[str, Any]
) -> None:
    d.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(weights, d / "weights.safetensors", metadata={"format": FORMAT})
    opt_tensors, opt_meta = optimizer_to_files(opt)
    save_tensors_atomic(
        {**opt_tensors, **rng_tensors()}, d / "optim.safetensors", metadata={"format": FORMAT}
    )
    write_json_atomic(d / "state.json", {"format": FORMAT, **state, "optimizer": opt_meta})


def load_sae_checkpoint(d: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, optimizer+rng tensors, state json) of one SAE checkpoint, or a VsaeError."""
    try:
        state = json.loads((d / "state.json").read_text())
        if state.get("format") != FORMAT:
            raise VsaeError(f"{d / 'state.json'} is not a vsae training checkpoint")
        return load_file(str(d / "weights.safetensors")), load_file(str(d / "optim.safetensors")), state
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, SafetensorError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise VsaeError(
            f"cannot read checkpoint {d} ({msg}); delete it to restart, or pass another --out"
        ) from None


def read_run_state(run_dir: Path) -> dict[str, Any] | None:
    p = run_dir / STATE
    if not p.exists():
        return None
    try:
        st = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VsaeError(f"{p} is corrupt; delete {run_dir} to restart the run") from None
    if not isinstance(st, dict) or st.get("format") != FORMAT:
        raise VsaeError(f"{p} is not a vsae training state; pass another --out")
    step, scale, names = st.get("step"), st.get("scale"), st.get("names")
    checks = {
        "step": isinstance(step, int) and not isinstance(step, bool) and step >= 0,
        "scale": isinstance(scale, int | float) and math.isfinite(scale) and scale > 0,
        "names": isinstance(names, list) and all(isinstance(n, str) for n in names),
        "train_cfg": isinstance(st.get("train_cfg"), dict),
    }
    for key, ok in checks.items():
        if not ok:
            raise VsaeError(
                f"{p} is damaged ({key} is {str(st.get(key))[:40]!r}); delete {run_dir} to restart the run"
            )
    return st


def commit_run_state(run_dir: Path, state: dict[str, Any], names: list[str]) -> None:
    """Point the run at ``state['step']`` and remove older checkpoints."""
    try:
        write_json_atomic(run_dir / STATE, {"format": FORMAT, **state})
    except OSError as e:
        (run_dir / (STATE + ".tmp")).unlink(missing_ok=True)
        raise VsaeError(
            f"cannot write {run_dir / STATE} ({e.strerror or e}); free disk space and rerun with --resume "
            "(it continues exactly from the last complete checkpoint)"
        ) from None
    keep = f"ckpt-{state['step']:09d}"
    for name in names:
        for old in (run_dir / name).glob("ckpt-*"):
            if old.name != keep and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
