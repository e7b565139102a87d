"""`vsae demo`: extract -> train -> evaluate -> report, on the shapes world, offline.

Every stage goes through the same library paths as real use: the world is written as an image
folder tree and read by `vsae.extract` (the shipped CLIP is just a model directory), SAEs are
trained from the stores by `vsae.train`, and the metrics are `vsae.eval`'s. Re-running with the
same `--out` resumes: finished stages are not redone.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from vsae.demo.demo_config import DemoConfig, RunKey, Stores, Tables, demo_train_config

SPLITS = ("train", "val", "test", "ood_background", "ood_combo")
SHIFTED = ("ood_background", "ood_combo")
# Attributes whose ground truth the demo checks latents against (purity, name agreement).
ATTRIBUTES = (
    "class_name",
    "shape",
    "shape_family",
    "colour",
    "colour_family",
    "size",
    "position",
    "background",
    "tone",
    "outline",
)
# Concept words for latent naming (Olson et al.'s automatic attribute discovery).
NAME_ATTRIBUTES = ("shape", "colour", "background", "size")


class Stopwatch:
    """Wall time per stage, for the report."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self._t, 2)
        self._t = now


# -- stages ------------------------------------------------------------------------------------
def export_world(cfg: DemoConfig) -> Path:
    """The world's image-folder export under OUT/world (written once; resumed runs reuse it)."""
    from vsae.world import export

    d = cfg.out / "world"
    if not (d / "attributes.json").exists():
        if d.exists():  # an export killed half-way: start it again
            import shutil

            shutil.rmtree(d)
        export(d, counts=dict(cfg.counts), seed=cfg.seed, progress=False)
    return d


def extract_all(
    cfg: DemoConfig, world_dir: Path, clip_dir: str, simenc_dir: str
) -> dict[str, dict[str, Any]]:
    """Stores: {split: {hook: store, "sim": similarity-encoder embeddings}}."""
    from vsae.extract import ExtractConfig, extract
    from vsae.store import ActivationStore

    stores: dict[str, dict[str, Any]] = {}
    for split in cfg.counts:
        base = cfg.out / "stores" / "clip" / split
        common: dict[str, Any] = dict(
            data=str(world_dir),
            split=split,
            dtype="float32",
            batch_size=256,
            seed=cfg.seed,
            progress=False,
            num_workers=0,  # 32 px images: decoding in this process is faster than loader workers
        )
        extract(ExtractConfig(model=clip_dir, hooks=cfg.hooks, tokens=cfg.tokens, out=str(base), **common))
        stores[split] = {h: ActivationStore.open(base / h) for h in cfg.hooks}
        sim = cfg.out / "stores" / "simenc" / split
        extract(ExtractConfig(model=simenc_dir, hooks=("embed",), tokens="cls", out=str(sim), **common))
        stores[split]["sim"] = ActivationStore.open(sim)
    return stores


def train_all(cfg: DemoConfig, stores: Stores) -> dict[RunKey, Path]:
    """One training pass per layer trains every (arch, expansion) SAE on the same batches."""
    from vsae.sae.sae_config import config_for
    from vsae.train import run_name, train
    from vsae.train.checkpoint import read_run_state

    runs: dict[tuple[str, str, int], Path] = {}
    for hook in cfg.hooks:
        src = stores["train"][hook]
        cfgs, keys = [], []
        for arch in cfg.archs:
            for e in cfg.expansions:
                c = config_for(  # k, groups, aux_k: the settings each architecture has
                    arch,
                    d_in=src.d,
                    d_sae=e * src.d,
                    k=cfg.k,
                    groups=cfg.groups,
                    aux_k=2 * cfg.k,
                    provenance=src.provenance,
                )
                c = replace(c, name=run_name(c, e))
                cfgs.append(c)
                keys.append((hook, arch, e))
        # all validation rows: the self-check re-computes the validation FVU
        tcfg = demo_train_config(cfg, len(src), val_rows=len(stores["val"][hook]))
        run_dir = cfg.out / "runs" / hook
        resume = read_run_state(run_dir) is not None
        dirs = train(src, cfgs, tcfg, run_dir, val=stores["val"][hook], resume=resume, progress=cfg.progress)
        runs.update(dict(zip(keys, dirs)))
    return runs


def image_tables(world_dir: Path, stores: Stores) -> Tables:
    """Per split: ground-truth attribute codes [N] aligned with the store rows (via image_index)."""
    from vsae.data import open_source
    from vsae.world import attribute_vocab

    rows = {r["path"]: r for r in json.loads((world_dir / "attributes.json").read_text())}
    out: Tables = {}
    for split, st in stores.items():
        src = open_source(str(world_dir), split)
        store = st["sim"]
        for h, other in st.items():
            if not np.array_equal(other.image_index, store.image_index):
                raise RuntimeError(f"{split}: rows of {h} and of the similarity encoder are different images")
        rel = [str(Path(p).relative_to(world_dir)) for p in src.items]
        recs = [rows[rel[i]] for i in store.image_index]
        table = {a: np.array([attribute_vocab(a).index(r[a]) for r in recs]) for a in ATTRIBUTES}
        table["path"] = np.array([str(world_dir / rel[i]) for i in store.image_index])
        out[split] = table
    return out
