"""Publishing an SAE to the Hugging Face hub: a generated model card and the uploaded folder.

``stage(run_dir, dst)`` writes what would go up: the vsae checkpoint (``config.json`` +
``sae.safetensors``), the training log and ``ms.json`` when present, a SAELens export in
``saelens/`` (so SAELens users load it too) and ``README.md`` (the card, :func:`model_card`);
``push(run_dir, repo_id)`` uploads that folder with ``huggingface_hub.HfApi.upload_folder``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vsae.errors import VsaeError
from vsae.sae.files import CONFIG, WEIGHTS, read_config, resolve
from vsae.sae.io import load
from vsae.sae.saelens import export_saelens

EXTRAS = ("log.jsonl", "ms.json")  # copied beside the checkpoint when the run has them


def _ms(run: Path) -> dict[str, Any] | None:
    """The SAE entry of the run's ``ms.json`` (``vsae eval ms --out RUN``), None if never measured."""
    p = run / "ms.json"
    try:
        ms = json.loads(p.read_text()) if p.is_file() else None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return ms.get("sae") if isinstance(ms, dict) and isinstance(ms.get("sae"), dict) else None


def _last_val(run: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """The run's final validation metrics (config.json ``val``), else the last log row's."""
    if isinstance(meta.get("val"), dict) and meta["val"]:
        return dict(meta["val"])
    log = run / "log.jsonl"
    rows = (
        [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    )
    train = [r for r in rows if "fvu" in r]
    return {k: train[-1].get(k) for k in ("fvu", "l0", "dead_frac")} if train else {}


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "not measured"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def model_card(run_dir: str | os.PathLike, repo_id: str) -> str:
    """The README.md of an SAE repo: what it was trained on, its metrics and how to load it."""
    run = resolve(run_dir)
    meta = read_config(run)
    cfg, prov = meta["cfg"], meta["cfg"].get("provenance") or {}
    tcfg = meta.get("train_cfg") or {}
    val = _last_val(run, meta)
    ms = _ms(run)
    steps = meta.get("steps") or tcfg.get("steps")
    rows = steps * tcfg["batch_size"] if steps and tcfg.get("batch_size") else None
    k = cfg.get("k") if cfg["arch"] in ("topk", "batchtopk", "matryoshka") else None
    model = prov.get("model") or prov.get("model_id") or "unknown"
    table = [
        ("model", model),
        ("model revision", prov.get("revision") or "unknown"),
        ("hook (vsae)", prov.get("hook") or prov.get("source_hook") or "unknown"),
        ("hook module path", prov.get("hook_module") or "unknown"),
        ("tokens", prov.get("tokens") or "unknown"),
        ("data", prov.get("data") or "unknown"),
        ("architecture", cfg["arch"]),
        ("d_in", cfg["d_in"]),
        ("width (d_sae)", cfg["d_sae"]),
        ("k", k if k is not None else "-"),
        ("training rows", rows if rows is not None else "unknown"),
        ("FVU", _fmt(val.get("fvu"))),
        ("L0", _fmt(val.get("l0"))),
        ("dead fraction", _fmt(val.get("dead_frac"))),
        ("MS (mean, Pach et al.)", _fmt(ms.get("mean")) if ms else "not measured"),
    ]
    lines = [
        "---",
        "library_name: vsae",
        "tags: [sparse-autoencoder, vsae, saelens, interpretability, vision]",
        *([f"base_model: {model}"] if model != "unknown" and "/" in str(model) else []),
        "---",
        "",
        f"# {cfg['arch']} SAE ({cfg['d_sae']} latents) on {model} at {table[2][1]}",
        "",
        "Trained with [vsae](https://github.com/) on activations extracted from the model above.",
        "FVU, L0 and dead fraction are vsae's validation metrics at the end of training "
        "(definitions: vsae docs/METRICS.md); MS is `vsae eval ms` when it was measured.",
        "",
        "| field | value |",
        "|---|---|",
        *(f"| {a} | {b} |" for a, b in table),
        "",
        "## Load with vsae",
        "",
        "```python",
        "import vsae",
        "",
        f'sae = vsae.SAE.from_pretrained("{repo_id}")',
        "z = sae.encode(acts)  # [..., d_in] -> [..., d_sae]",
        "```",
        "",
        f"or on the command line: `vsae encode --sae {repo_id} --acts STORE --out LATENTS`.",
        "",
        "## Load with SAELens",
        "",
        "The `saelens/` folder holds the same SAE in SAELens's format (`cfg.json` + `sae_weights.safetensors`;"
        " its `metadata.hook_name` is the hook's module path in the model).",
        "",
        "```python",
        "from huggingface_hub import snapshot_download",
        "from sae_lens import SAE",
        "",
        f'path = snapshot_download("{repo_id}", allow_patterns=["saelens/*"])',
        'sae = SAE.load_from_disk(path + "/saelens")',
        "```",
        "",
    ]
    return "\n".join(lines)


def stage(run_dir: str | os.PathLike, dst: str | os.PathLike, repo_id: str) -> Path:
    """Write into ``dst`` the folder ``push`` uploads (see the module docstring); returns ``dst``."""
    run = resolve(run_dir)
    read_config(run)  # a vsae checkpoint, or a one-line error
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG, WEIGHTS, *EXTRAS):
        if (run / name).is_file():
            shutil.copyfile(run / name, out / name)
    sae = load(run)
    if sae.cfg.arch and _exports(sae):
        export_saelens(sae, out / "saelens")
    (out / "README.md").write_text(model_card(run, repo_id))
    return out


def _exports(sae: Any) -> bool:
    from vsae.sae.arch_registry import get_arch

    return get_arch(sae.cfg.arch).saelens is not None and (
        sae.cfg.arch not in ("batchtopk", "matryoshka") or float(sae.threshold) >= 0
    )


def push(
    run_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload SAE with vsae",
) -> str:
    """Upload an SAE run directory to the hub repo ``repo_id`` (created if missing) through
    ``huggingface_hub``; returns the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage(run_dir, Path(tmp) / "upload", repo_id)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            info = api.upload_folder(
                folder_path=str(folder), repo_id=repo_id, revision=revision, commit_message=commit_message
            )
        except (HfHubHTTPError, OSError, ValueError) as e:
            raise VsaeError(
                f"cannot upload to {repo_id} ({str(e).splitlines()[0]}); check the id, token and network"
            ) from None
    return str(getattr(info, "commit_url", info))
