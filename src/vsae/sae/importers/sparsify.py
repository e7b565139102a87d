"""sparsify (EleutherAI/sparsify): one folder per hook (``layers.5/``), each with ``cfg.json``
(``SparseCoderConfig`` + ``d_in``: ``activation``, ``k``, ``num_latents``, ``expansion_factor``,
``skip_connection``, ``transcode`` ...) and ``sae.safetensors`` (``encoder.weight`` [F, d],
``encoder.bias``, ``W_dec`` [F, d], ``b_dec``), as ``SparseCoder.save_to_disk`` writes them.

Inference rule (``SparseCoder.encode`` with ``activation="topk"``): the k largest of
relu(encoder(x - b_dec)). Transcoders, skip connections and groupmax are refused (no vsae
equivalent). A folder of hook folders is refused with the list, like a vsae sweep.
"""

from __future__ import annotations

from pathlib import Path

from vsae.errors import VsaeError
from vsae.sae.importers.common import build, json_or_none, load_safetensors, need, provenance, read_json
from vsae.sae.importers.registry import Imported, register_importer
from vsae.sae.sae_config import SAEConfig

NAME = "sparsify"
CONFIG, WEIGHTS = "cfg.json", "sae.safetensors"


def _dir(path: Path) -> Path:
    return path.parent if path.is_file() else path


def _is_one(d: Path) -> bool:
    cfg = json_or_none(d / CONFIG)
    return (d / WEIGHTS).is_file() and cfg is not None and "d_in" in cfg


@register_importer(NAME, f"{CONFIG} with d_in + {WEIGHTS}, one folder per hook")
class Sparsify:
    @staticmethod
    def detect(path: Path) -> bool:
        d = _dir(path)
        return _is_one(d) or (d.is_dir() and any(_is_one(q) for q in d.iterdir() if q.is_dir()))

    @staticmethod
    def load(path: Path) -> Imported:
        d = _dir(path)
        if not _is_one(d):
            hooks = sorted(q.name for q in d.iterdir() if q.is_dir() and _is_one(q)) if d.is_dir() else []
            if len(hooks) == 1:
                d = d / hooks[0]
            elif hooks:
                raise VsaeError(
                    f"{d} holds sparsify SAEs for several hooks ({', '.join(hooks)}); pass one, e.g. {d / hooks[0]}"
                )
            else:
                raise VsaeError(f"{d} is not a sparsify SAE (needs {CONFIG} with d_in and {WEIGHTS})")
        cfg_json = read_json(d / CONFIG, NAME)
        for flag in ("transcode", "skip_connection"):
            if cfg_json.get(flag):
                raise VsaeError(
                    f"{d / CONFIG}: sparsify {flag}=true has no vsae equivalent; vsae imports plain SAEs"
                )
        if cfg_json.get("activation", "topk") != "topk":
            raise VsaeError(
                f"{d / CONFIG}: sparsify activation {cfg_json['activation']!r} is not supported; only topk"
            )
        state = load_safetensors(d / WEIGHTS, NAME)
        W, b, W_dec_Fd, b_dec = need(
            state, ["encoder.weight", "encoder.bias", "W_dec", "b_dec"], d / WEIGHTS, NAME
        )
        k = cfg_json.get("k", 32)  # 32: SparseCoderConfig's default
        if not isinstance(k, int) or not 0 < k <= W.shape[0]:
            raise VsaeError(f"{d / CONFIG} has k={k!r}; a sparsify SAE needs an integer k in 1..{W.shape[0]}")
        prov = provenance(NAME, hook=d.name if d != _dir(path) or d.name.startswith("layers") else None)
        cfg = SAEConfig(arch="topk", d_in=W.shape[1], d_sae=W.shape[0], k=k, provenance=prov)
        sae = build(cfg, W, b - W @ b_dec, W_dec_Fd, b_dec, d / WEIGHTS, NAME)
        return Imported(sae, NAME, [d / CONFIG, d / WEIGHTS], cfg_json)
