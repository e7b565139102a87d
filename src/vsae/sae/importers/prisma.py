"""ViT-Prisma (soniajoseph/ViT-Prisma, ``vit_prisma.sae.SparseAutoencoder``): ``config.json`` (the
``VisionModelSAERunnerConfig``: ``d_in``, ``d_sae`` / ``expansion_factor``, ``activation_fn_str``
"relu" | "topk", ``activation_fn_kwargs`` {"k"}, ``architecture``, ``hook_point``, ``model_name``,
``normalize_activations``) + a ``.pt`` state dict (``weights.pt`` in the released repos) with
``W_enc`` [d_in, d_sae], ``b_enc``, ``W_dec`` [d_sae, d_in], ``b_dec``.

Inference rule (``encode_standard``): act((x - b_dec) @ W_enc + b_enc), act = relu, or topk
(the k largest, then relu). Gated SAEs, activation normalisation and the legacy pickled
``{"cfg", "state_dict"}`` files are refused (the last cannot be read without pickle).
"""

from __future__ import annotations

from pathlib import Path

from vsae.errors import VsaeError
from vsae.sae.importers.common import build, json_or_none, load_pt, need, provenance, read_json
from vsae.sae.importers.registry import Imported, register_importer
from vsae.sae.sae_config import SAEConfig

NAME = "prisma"
CONFIG = "config.json"


def _dir(path: Path) -> Path:
    return path.parent if path.is_file() else path


def _weights(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".pt":
        return path
    d = _dir(path)
    if (d / "weights.pt").is_file():
        return d / "weights.pt"
    found = sorted(d.glob("*.pt")) if d.is_dir() else []
    return found[0] if len(found) == 1 else None


@register_importer(NAME, f"{CONFIG} with d_in and hook_point + weights.pt")
class Prisma:
    @staticmethod
    def detect(path: Path) -> bool:
        cfg = json_or_none(_dir(path) / CONFIG)
        return cfg is not None and "hook_point" in cfg and "d_in" in cfg and _weights(path) is not None

    @staticmethod
    def load(path: Path) -> Imported:
        d = _dir(path)
        c = read_json(d / CONFIG, NAME)
        wf = _weights(path)
        if wf is None:
            raise VsaeError(f"{d} has no weights.pt (or one other .pt); not a ViT-Prisma SAE")
        if c.get("architecture", "standard") != "standard":
            raise VsaeError(
                f"{d / CONFIG}: ViT-Prisma architecture {c['architecture']!r} is not supported; only standard"
            )
        if c.get("normalize_activations") not in (None, "none", False):
            raise VsaeError(
                f"{d / CONFIG}: normalize_activations={c['normalize_activations']!r} is not supported"
            )
        state = load_pt(wf, NAME)
        W_dF, b, W_dec_Fd, b_dec = need(state, ["W_enc", "b_enc", "W_dec", "b_dec"], wf, NAME)
        W = W_dF.T
        act = c.get("activation_fn_str", "relu")
        kwargs = c.get("activation_fn_kwargs") or {}
        prov = provenance(NAME, c.get("model_name"), c.get("hook_point"), layer=c.get("hook_point_layer"))
        if act == "relu":
            cfg = SAEConfig(arch="relu", d_in=W.shape[1], d_sae=W.shape[0], provenance=prov)
        elif act == "topk":
            cfg = SAEConfig(
                arch="topk",
                d_in=W.shape[1],
                d_sae=W.shape[0],
                k=int(kwargs.get("k", 0) or 0),
                provenance=prov,
            )
        else:
            raise VsaeError(f"{d / CONFIG}: activation_fn_str {act!r} is not supported; only relu and topk")
        sae = build(cfg, W, b - W @ b_dec, W_dec_Fd, b_dec, wf, NAME)
        return Imported(sae, NAME, [d / CONFIG, wf], c)
