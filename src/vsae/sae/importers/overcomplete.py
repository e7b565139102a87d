"""overcomplete (KempnerInstitute/overcomplete): an SAE's ``state_dict()`` saved by the user (the
library writes no config), plus the small ``overcomplete.json`` the user writes beside it::

    {"sae": "TopKSAE", "top_k": 8, "weights": "model.pt"}

``sae``: ``SAE`` (relu), ``TopKSAE`` (``top_k``), ``BatchTopKSAE`` (``threshold``: the model's
``running_threshold`` after training, which its state dict does not hold; optional ``k``: latents
per row, for further training) or ``JumpSAE``;
``weights``: the state dict (``.pt`` or ``.safetensors``; default: the only one in the folder);
``normalization``: the dictionary's (``"l2"``, the library's default, or ``"identity"``).
Only the default linear encoder (``encoder.final_block.0``) is supported.

Inference rules (the library's ``encode`` in eval mode; pre = x W^T + b, codes = relu(pre)):
SAE: codes; TopKSAE: the top_k largest codes; BatchTopKSAE: codes where >= threshold;
JumpSAE: codes where >= exp(thresholds). The dictionary is normalization(_weights) * exp(multiplier),
with no decoder bias.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from vsae.errors import VsaeError
from vsae.sae.importers.common import build, load_pt, load_safetensors, need, provenance, read_json
from vsae.sae.importers.registry import Imported, register_importer
from vsae.sae.sae_config import SAEConfig

NAME = "overcomplete"
CONFIG = "overcomplete.json"
ARCHS = {"SAE": "relu", "TopKSAE": "topk", "BatchTopKSAE": "batchtopk", "JumpSAE": "jumprelu"}


def _dir(path: Path) -> Path:
    return path.parent if path.is_file() else path


def _weights_file(d: Path, name: object) -> Path:
    if isinstance(name, str) and name:
        return d / name
    found = sorted(q for q in d.iterdir() if q.suffix in (".pt", ".pth", ".safetensors"))
    if len(found) != 1:
        raise VsaeError(f"{d / CONFIG} names no 'weights' and {d} holds {len(found)} state dicts; name one")
    return found[0]


@register_importer(NAME, f"a state dict + {CONFIG} (sae, top_k / threshold, weights)")
class Overcomplete:
    @staticmethod
    def detect(path: Path) -> bool:
        return (_dir(path) / CONFIG).is_file()

    @staticmethod
    def load(path: Path) -> Imported:
        d = _dir(path)
        cfg_json = read_json(d / CONFIG, NAME)
        kind = cfg_json.get("sae", "SAE")
        if kind not in ARCHS:
            raise VsaeError(f"{d / CONFIG}: sae {kind!r} is not supported; use one of {', '.join(ARCHS)}")
        wf = _weights_file(d, cfg_json.get("weights"))
        if not wf.is_file():
            raise VsaeError(f"{wf} (named by {d / CONFIG}) does not exist")
        state = load_safetensors(wf, NAME) if wf.suffix == ".safetensors" else load_pt(wf, NAME)
        extra = sorted(
            k for k in state if k.startswith("encoder.") and not k.startswith("encoder.final_block.0.")
        )
        if extra:
            raise VsaeError(f"{wf} has encoder layers {extra[:3]}; vsae imports the linear encoder only")
        W, b, D = need(
            state,
            ["encoder.final_block.0.weight", "encoder.final_block.0.bias", "dictionary._weights"],
            wf,
            NAME,
        )
        norm = cfg_json.get("normalization", "l2")
        if norm == "l2":
            D = D / D.norm(dim=-1, keepdim=True)
        elif norm != "identity":
            raise VsaeError(f"{d / CONFIG}: normalization {norm!r} is not supported; use l2 or identity")
        mult = state.get("dictionary.multiplier")
        if mult is not None:
            D = D * torch.exp(mult.float())
        arch = ARCHS[kind]
        kw: dict = {}
        threshold = None
        if arch == "topk":
            kw["k"] = int(cfg_json.get("top_k") or max(W.shape[0] // 10, 1))  # the library's default
        elif arch == "batchtopk":
            t = cfg_json.get("threshold")
            if not isinstance(t, int | float) or not math.isfinite(t):
                raise VsaeError(
                    f"{d / CONFIG}: a BatchTopKSAE needs 'threshold' (its running_threshold after training)"
                )
            # overcomplete's BatchTopK top_k counts the whole batch; vsae's k is per row (used only
            # to train on): the user's "k", else top_k capped at the width
            kw["k"] = int(cfg_json.get("k") or min(int(cfg_json.get("top_k") or 1), W.shape[0]))
            # the library keeps codes >= t; vsae keeps pre > t: the next float below t is the same rule
            t32 = torch.tensor([max(float(t), 0.0)])
            threshold = torch.nextafter(t32, torch.tensor([-math.inf])) if t > 0 else t32
        elif arch == "jumprelu":
            (log_t,) = need(state, ["thresholds"], wf, NAME)
            threshold = log_t.exp()
        cfg = SAEConfig(
            arch=arch, d_in=W.shape[1], d_sae=W.shape[0], provenance=provenance(NAME, sae=kind), **kw
        )
        sae = build(cfg, W, b, D, torch.zeros(W.shape[1]), wf, NAME, threshold)
        return Imported(sae, NAME, [d / CONFIG, wf], cfg_json)
