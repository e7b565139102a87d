"""Export to / import from the SAELens on-disk format: ``cfg.json`` + ``sae_weights.safetensors``.

SAELens (decoderesearch/SAELens) stores ``W_enc`` [d_in, d_sae], ``W_dec`` [d_sae, d_in],
``b_enc`` [d_sae], ``b_dec`` [d_in] and, for JumpReLU, ``threshold`` [d_sae]; the config names
the inference ``architecture``. Mapping (SAELens saves BatchTopK SAEs as JumpReLU too):

    vsae relu -> "standard"       vsae topk -> "topk" (k)      vsae jumprelu -> "jumprelu"
    vsae batchtopk / matryoshka -> "jumprelu" with the learned inference threshold per latent

Importing accepts "standard", "topk", "jumprelu" (and "batchtopk", saved with a threshold);
``apply_b_dec_to_input`` is folded into ``b_enc``; decoder norms are folded into the latents
(exact for ReLU/JumpReLU, and for TopK trained with ``rescale_acts_by_decoder_norm``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vsae.errors import VsaeError
from vsae.sae.base import SAE
from vsae.sae.batchtopk import BatchTopKSAE
from vsae.sae.config import SAEConfig
from vsae.sae.io import CLASSES, save_tensors_atomic, write_json_atomic
from vsae.sae.jumprelu import JumpReluSAE

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
_TO_SAELENS = {
    "relu": "standard",
    "topk": "topk",
    "jumprelu": "jumprelu",
    "batchtopk": "jumprelu",
    "matryoshka": "jumprelu",
}


def export_saelens(sae: SAE, directory: str | os.PathLike) -> Path:
    """Write ``sae`` (input-scale weights, as saved by vsae) in SAELens's format."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = sae.cfg
    arch = _TO_SAELENS[cfg.arch]
    tensors = {
        "W_enc": sae.W_enc_Fd.detach().T.contiguous(),
        "W_dec": sae.W_dec_Fd.detach().contiguous(),
        "b_enc": sae.b_enc_F.detach(),
        "b_dec": sae.b_dec_d.detach(),
    }
    if isinstance(sae, JumpReluSAE):
        tensors["threshold"] = sae.threshold_F.detach().relu()
    elif isinstance(sae, BatchTopKSAE):
        t = float(sae.threshold)
        if t < 0:
            raise VsaeError(
                "this BatchTopK SAE has no inference threshold yet (never trained); train it before export"
            )
        tensors["threshold"] = torch.full((cfg.d_sae,), t)
    prov = cfg.provenance or {}
    meta = {
        "model_name": prov.get("model") or prov.get("model_id"),
        "hook_name": prov.get("hook"),
        "vsae_arch": cfg.arch,
        "vsae_provenance": prov,
    }
    out: dict[str, Any] = {
        "architecture": arch,
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": meta,
    }
    if arch == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    save_tensors_atomic(tensors, d / WEIGHTS)
    write_json_atomic(d / CFG, out)
    return d


def load_saelens(directory: str | os.PathLike) -> SAE:
    """A vsae SAE from a SAELens directory (``cfg.json`` + ``sae_weights.safetensors``)."""
    d = Path(directory)
    if not (d / CFG).is_file() or not (d / WEIGHTS).is_file():
        raise VsaeError(f"{d} is not a SAELens SAE (needs {CFG} and {WEIGHTS})")
    try:
        c = json.loads((d / CFG).read_text())
        w = load_file(str(d / WEIGHTS))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as e:
        raise VsaeError(f"cannot read the SAELens SAE in {d} ({str(e).splitlines()[0]})") from None
    arch = c.get("architecture", "standard")
    if c.get("normalize_activations", "none") not in ("none", None):
        raise VsaeError(
            f"SAELens normalize_activations={c['normalize_activations']!r} is not supported; fold it first"
        )
    if c.get("reshape_activations", "none") not in ("none", None):
        raise VsaeError("SAELens hook_z reshaping is not supported by vsae")
    need = {"W_enc", "W_dec", "b_enc", "b_dec"}
    if not need <= set(w):
        raise VsaeError(f"{d / WEIGHTS} lacks {sorted(need - set(w))}; not a supported SAELens SAE")
    W_enc_Fd = w["W_enc"].float().T.contiguous()
    W_dec_Fd = w["W_dec"].float()
    b_enc, b_dec = w["b_enc"].float(), w["b_dec"].float()
    d_in, d_sae = W_dec_Fd.shape[1], W_dec_Fd.shape[0]
    if c.get("apply_b_dec_to_input", True):
        b_enc = b_enc - W_enc_Fd @ b_dec
    threshold = w.get("threshold")
    meta = c.get("metadata") or {}
    prov = meta.get("vsae_provenance") or {
        k: v for k, v in (("model", meta.get("model_name")), ("hook", meta.get("hook_name"))) if v
    }
    prov = {**prov, "imported_from": "saelens"}
    if arch == "standard":
        cfg = SAEConfig(arch="relu", d_in=d_in, d_sae=d_sae, provenance=prov)
    elif arch == "topk":
        cfg = SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=int(c.get("k", 100)), provenance=prov)
    elif arch in ("jumprelu", "batchtopk"):
        if threshold is None:
            raise VsaeError(f"{d / WEIGHTS} has no 'threshold' for a {arch} SAE")
        cfg = SAEConfig(arch="jumprelu", d_in=d_in, d_sae=d_sae, provenance=prov)
    else:
        raise VsaeError(
            f"SAELens architecture {arch!r} is not supported; vsae imports standard, topk, jumprelu"
        )
    norms = W_dec_Fd.norm(dim=1).clamp_min(1e-12)
    if arch != "topk" or c.get("rescale_acts_by_decoder_norm", False):
        # z' = z * ||W_dec[f]||, W_dec' = W_dec / ||W_dec[f]||: same reconstruction, unit-norm decoder.
        W_enc_Fd, b_enc, W_dec_Fd = W_enc_Fd * norms[:, None], b_enc * norms, W_dec_Fd / norms[:, None]
        if threshold is not None:
            threshold = threshold.float() * norms
    sae = CLASSES[cfg.arch](cfg)
    with torch.no_grad():
        sae.W_enc_Fd.copy_(W_enc_Fd)
        sae.b_enc_F.copy_(b_enc)
        sae.W_dec_Fd.copy_(W_dec_Fd)
        sae.b_dec_d.copy_(b_dec)
        if isinstance(sae, JumpReluSAE):
            sae.threshold_F.copy_(threshold.float())
    return sae.eval()
