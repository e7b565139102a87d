"""The demo checks itself: pairs of numbers of one run that must agree, compared, and the run
failing loudly when they do not.

Each check computes one number two independent ways:
- the raw shape probe on `embed` vs CLIP zero-shot shape accuracy on the same test split (a
  linear probe on the embedding can express the zero-shot classifier, so it must not be far
  below it; a probe that never saw half the classes is);
- the validation FVU the training log wrote vs `vsae eval recon` (`run_recon`) on the same rows;
- the MS of one demo SAE vs `vsae eval ms` (`run_ms`) on the same stores.
`require` raises `ConsistencyError` (one line per failed check) after results.json is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from vsae.demo.analyse import EvalInputs
from vsae.demo.demo_config import DemoConfig, RunKey, Stores, Tables
from vsae.errors import VsaeError
from vsae.eval.commands import run_ms, run_recon
from vsae.eval.naming import encode_words
from vsae.eval.zeroshot import zero_shot_accuracy
from vsae.world.captions import shape_prompts

PROBE_ZERO_SHOT_MARGIN = 0.1  # the probe may trail zero-shot by this much (fewer train rows, L2)
RECON_RTOL = 1e-4  # float32 encode/decode in two code paths
MS_RTOL = 1e-6


class ConsistencyError(VsaeError):
    """Two numbers of one demo run that must agree do not: a bug, not a finding."""


def _check(name: str, ok: bool, a: tuple[str, float], b: tuple[str, float], rule: str) -> dict[str, Any]:
    return {"check": name, "ok": bool(ok), a[0]: a[1], b[0]: b[1], "rule": rule}


def probe_vs_zero_shot(
    probe_test: float, zero_shot: float, margin: float = PROBE_ZERO_SHOT_MARGIN
) -> dict[str, Any]:
    """The raw `embed` shape probe's test accuracy must reach the zero-shot accuracy minus `margin`."""
    return _check(
        "raw embed shape probe vs CLIP zero-shot (test split)",
        probe_test >= zero_shot - margin,
        ("probe_test", float(probe_test)),
        ("zero_shot", float(zero_shot)),
        f"probe_test >= zero_shot - {margin}",
    )


def zero_shot_shape_accuracy(clip_dir: str, image_embeds_ND: np.ndarray, shape_N: np.ndarray) -> float:
    """CLIP zero-shot shape accuracy of the stored `embed` rows with the world's shape prompts."""
    from vsae.models import load  # loads transformers: only for the text tower

    txt = encode_words(load(clip_dir, tower="text"), shape_prompts(), template="{}")
    return zero_shot_accuracy(image_embeds_ND, txt, shape_N)


def logged_val_fvu(run_dir: str | Path) -> float:
    """The last validation FVU the trainer wrote to `run_dir/log.jsonl`."""
    log = Path(run_dir) / "log.jsonl"
    vals = (
        [r["val"] for r in map(json.loads, log.read_text().splitlines()) if "val" in r]
        if log.is_file()
        else []
    )
    if not vals:
        raise ConsistencyError(f"{log} has no validation row; train with validation rows (val_rows > 0)")
    return float(vals[-1]["fvu"])


def training_log_vs_recon(run_dir: str | Path, val_store: str | Path, out: str | Path) -> dict[str, Any]:
    """The training log's validation FVU vs `vsae eval recon` on the same (whole) validation store."""
    logged = logged_val_fvu(run_dir)
    recon = run_recon(val_store, run_dir, out, progress=False).recon.fvu
    ok = bool(np.isclose(logged, recon, rtol=RECON_RTOL, atol=1e-7))
    return _check(
        f"validation FVU in the training log vs vsae eval recon ({Path(run_dir).name})",
        ok,
        ("training_log", logged),
        ("eval_recon", float(recon)),
        f"equal within rtol {RECON_RTOL}",
    )


def ms_vs_eval_ms(
    ms_per_latent: np.ndarray, run_dir: str | Path, acts: str | Path, embeddings: str | Path, out: str | Path
) -> dict[str, Any]:
    """The demo's per-latent MS of one SAE vs `vsae eval ms` (`run_ms`) on the same stores."""
    res = run_ms(embeddings, out, acts=acts, sae_path=run_dir, raw=False, progress=False)
    cli = load_file(str(Path(out) / "ms_scores.safetensors"))["sae"]
    mine = np.asarray(ms_per_latent, np.float64)
    ok = mine.shape == cli.shape and bool(np.allclose(mine, cli, rtol=MS_RTOL, atol=1e-9, equal_nan=True))
    return _check(
        f"MS of {Path(run_dir).name}: demo vs vsae eval ms",
        ok,
        ("demo_mean", float(np.nanmean(mine))),
        ("eval_ms_mean", float(res.to_json()["sae"]["mean"])),
        f"every latent equal within rtol {MS_RTOL}",
    )


def require(checks: list[dict[str, Any]]) -> None:
    """Raise `ConsistencyError` naming every failed check."""
    bad = [c for c in checks if not c["ok"]]
    if bad:
        parts = "; ".join(
            f"{c['check']}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in c.items() if isinstance(v, float))
            + f" (rule: {c['rule']})"
            for c in bad
        )
        raise ConsistencyError(
            f"the demo's self-checks failed — {parts}; this is a bug in vsae, please report it"
        )


def run_checks(
    cfg: DemoConfig,
    stores: Stores,
    tables: Tables,
    runs: dict[RunKey, Path],
    layers: dict[str, Any],
    ti: EvalInputs,
    clip_dir: str,
    out: Path,
) -> list[dict[str, Any]]:
    """Every self-check of one demo run (see the module doc), on the featured SAE."""
    hook, arch, e = cfg.featured_sae
    run_dir = runs[(hook, arch, e)]
    name = Path(run_dir).name
    zs = zero_shot_shape_accuracy(clip_dir, ti.clip_emb_ND, tables["test"]["shape"])
    return [
        probe_vs_zero_shot(layers["embed"]["raw"]["probe"]["test"], zs),
        training_log_vs_recon(run_dir, stores["val"][hook].path, out / "checks" / "recon" / hook / name),
        ms_vs_eval_ms(
            layers[hook]["saes"][name]["ms_per_latent"],
            run_dir,
            stores["test"][hook].path,
            stores["test"]["sim"].path,
            out / "checks" / "ms" / hook / name,
        ),
    ]
