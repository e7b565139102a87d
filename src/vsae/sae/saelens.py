"""Export to / import from the SAELens 6.x on-disk format: ``cfg.json`` + ``sae_weights.safetensors``.

SAELens (decoderesearch/SAELens) stores ``W_enc`` [d_in, d_sae], ``W_dec`` [d_sae, d_in],
``b_enc`` [d_sae], ``b_dec`` [d_in] and, for JumpReLU, ``threshold`` [d_sae]. ``cfg.json`` names
the inference ``architecture`` and holds a ``metadata`` dict whose ``sae_lens_version`` (>= 6.0)
tells SAELens to keep it (without one SAELens rewrites the file as a pre-6.0 config and drops
the metadata). Each vsae architecture says in its registration (:mod:`vsae.sae.arch_registry`)
which SAELens architecture it exports as; the built-in ones (SAELens saves BatchTopK and
Matryoshka BatchTopK as JumpReLU too):

    vsae relu -> "standard"     vsae topk -> "topk" (k)     vsae jumprelu -> "jumprelu"
    vsae batchtopk / matryoshka -> "jumprelu" with the inference threshold on every latent;
        metadata.training_architecture "batchtopk" / "matryoshka_batchtopk" and
        metadata.training_architecture_details {k, matryoshka_widths, ...} as SAELens writes them

``metadata.model_name`` / ``hook_name`` carry the provenance; ``metadata.vsae`` the full vsae
config, so a round trip restores the architecture, k, the groups and the provenance. Importing
accepts "standard", "topk", "jumprelu" (and "batchtopk", saved with a threshold);
``apply_b_dec_to_input`` is folded into ``b_enc``; decoder norms are folded into the latents
(exact for ReLU/JumpReLU, and for TopK with ``rescale_acts_by_decoder_norm``, which the TopK
export sets as vsae's rows are unit norm). A SAELens BatchTopK / Matryoshka BatchTopK (one
threshold, unit-norm rows) comes back as a vsae one with its k and groups; else as JumpReLU.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from vsae.errors import VsaeError, regular_file
from vsae.sae.arch_registry import ArchSpec, all_archs, get_arch
from vsae.sae.files import save_tensors_atomic, write_json_atomic
from vsae.sae.sae_config import SAEConfig

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
# The SAELens release whose cfg.json schema this module writes (and was checked against).
SAELENS_VERSION = "6.54.12"
_UNIT_TOL = 1e-4  # decoder rows this close to unit norm count as unit norm
# SAELens inference architectures vsae imports, and (older SAELens) "batchtopk" saved with a threshold.
_IMPORTS = ("standard", "topk", "jumprelu", "batchtopk")


def unit_rows(W_dec_Fd: torch.Tensor) -> bool:
    """Whether every decoder row has unit L2 norm (within 1e-4)."""
    return bool(((W_dec_Fd.norm(dim=1) - 1).abs() <= _UNIT_TOL).all())


def _canonical(saelens_arch: str) -> str:
    """SAELens's current name of an inference architecture (older releases saved "batchtopk")."""
    return "jumprelu" if saelens_arch == "batchtopk" else saelens_arch


def _native(saelens_arch: str) -> ArchSpec:
    """The vsae architecture a SAELens inference architecture imports as (the one exporting as it
    without a training architecture of its own)."""
    want = _canonical(saelens_arch)
    for spec in all_archs():
        if spec.saelens == want and spec.saelens_training is None:
            return spec
    raise VsaeError(f"no vsae architecture imports SAELens {saelens_arch!r} SAEs")


def _by_training_arch(name: Any) -> ArchSpec | None:
    """The vsae architecture registered under SAELens training architecture ``name`` (None: none)."""
    return next(
        (s for s in all_archs() if s.saelens_training is not None and s.saelens_training == name), None
    )


def is_saelens_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a directory holding a SAELens ``cfg.json`` + ``sae_weights.safetensors``."""
    p = Path(path)
    return (p / CFG).is_file() and (p / WEIGHTS).is_file()


class SaelensHooks(Protocol):
    """What an architecture's SAE class may define for its SAELens form (each optional; the
    default, used where a class does not define it, in brackets). The built-in ones are in the
    architectures' files (``vsae/sae/archs/batchtopk.py``, ``jumprelu.py``, ``matryoshka.py``).

    - ``saelens_tensors(self) -> dict[str, Tensor]``: tensors the export writes besides W_enc,
      W_dec, b_enc, b_dec, e.g. ``threshold`` ({});
    - ``load_saelens_threshold(self, threshold)``: take an imported ``threshold`` [F] (ignore it);
    - ``saelens_training_details(cls, cfg) -> dict``: ``metadata.training_architecture_details``
      of the export ({}: none);
    - ``config_from_saelens(cls, details, d_in, d_sae) -> dict``: config settings read back from
      those details ({});
    - ``restores_from_saelens(cls, W_dec_Fd, threshold) -> bool``: whether SAELens weights of this
      training architecture are exactly this SAE (True).
    """


def _hook(obj: Any, name: str, default: Callable[..., Any]) -> Callable[..., Any]:
    """The SAELens hook ``name`` of an SAE or SAE class (:class:`SaelensHooks`), else ``default``."""
    fn = getattr(obj, name, None)
    return fn if callable(fn) else default


def export_saelens(sae: Any, directory: str | os.PathLike) -> Path:
    """Write ``sae`` (a :class:`vsae.sae.base.SAE`, input-scale weights as saved by vsae) in SAELens
    6.x's format. (SAEs are typed ``Any`` in this module, which ``vsae.sae.base`` imports.)"""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = sae.cfg
    spec = get_arch(cfg.arch)
    arch = spec.saelens
    if arch is None:
        raise VsaeError(f"the {cfg.arch!r} architecture has no SAELens equivalent; it cannot be exported")
    tensors = {
        "W_enc": sae.W_enc_Fd.detach().T.contiguous(),
        "W_dec": sae.W_dec_Fd.detach().contiguous(),
        "b_enc": sae.b_enc_F.detach(),
        "b_dec": sae.b_dec_d.detach(),
        **_hook(sae, "saelens_tensors", dict)(),
    }
    prov = cfg.provenance or {}
    meta: dict[str, Any] = {
        "sae_lens_version": SAELENS_VERSION,
        "sae_lens_training_version": None,  # trained by vsae, not by SAELens
        "model_name": prov.get("model") or prov.get("model_id"),
        # SAELens users attach by the model's own module path; vsae's hook name sits beside it.
        "hook_name": prov.get("hook_module") or prov.get("hook"),
        "vsae_hook_name": prov.get("hook"),
        "training_architecture": spec.saelens_training or arch,
        "vsae": {"cfg": cfg.to_json()},
    }
    details = _hook(spec.cls, "saelens_training_details", lambda cfg: {})(cfg)
    if details:
        meta["training_architecture_details"] = details
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
        # vsae keeps decoder rows at unit norm, so SAELens's rescaling is the identity; say so
        # only when it holds, as with rows of other norms it changes which k latents win.
        out["rescale_acts_by_decoder_norm"] = unit_rows(sae.W_dec_Fd.detach())
    save_tensors_atomic(tensors, d / WEIGHTS)
    write_json_atomic(d / CFG, out)
    return d


def _read(d: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not is_saelens_dir(d):
        raise VsaeError(f"{d} is not a SAELens SAE (needs {CFG} and {WEIGHTS})")
    for f in (CFG, WEIGHTS):
        regular_file(d / f, "SAELens file", "copy the SAE directory again")
    try:
        c = json.loads((d / CFG).read_text())
        w = load_file(str(d / WEIGHTS))
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError) as e:
        raise VsaeError(f"cannot read the SAELens SAE in {d} ({str(e).splitlines()[0]})") from None
    if not isinstance(c, dict):
        raise VsaeError(f"{d / CFG} is not a JSON object; not a SAELens config")
    if c.get("normalize_activations", "none") not in ("none", None, False):
        raise VsaeError(
            f"SAELens normalize_activations={c['normalize_activations']!r} is not supported; fold it first"
        )
    if c.get("reshape_activations", "none") not in ("none", None):
        raise VsaeError("SAELens hook_z reshaping is not supported by vsae")
    need = {"W_enc", "W_dec", "b_enc", "b_dec"}
    if not need <= set(w):
        raise VsaeError(f"{d / WEIGHTS} lacks {sorted(need - set(w))}; not a supported SAELens SAE")
    return c, w


def _metadata(c: dict[str, Any]) -> dict[str, Any]:
    """``cfg.json``'s metadata; pre-6.0 configs keep ``model_name`` / ``hook_point`` at the top level."""
    meta = dict(c["metadata"]) if isinstance(c.get("metadata"), dict) else {}
    for key, top in (("model_name", "model_name"), ("hook_name", "hook_name"), ("hook_name", "hook_point")):
        if meta.get(key) is None and c.get(top) is not None:
            meta[key] = c[top]
    if meta.get("vsae_hook_name"):  # a vsae export: hook_name is the module path, this is vsae's name
        meta["hook_module"], meta["hook_name"] = meta.get("hook_name"), meta["vsae_hook_name"]
    return meta


def _vsae_cfg(meta: dict[str, Any], d: Path, d_in: int, d_sae: int) -> SAEConfig | None:
    """The vsae config stored by :func:`export_saelens`, checked against the weights (None: none)."""
    v = meta.get("vsae")
    if not isinstance(v, dict) or not isinstance(v.get("cfg"), dict):
        return None
    try:
        cfg = SAEConfig.from_json(v["cfg"])
    except (TypeError, ValueError, VsaeError) as e:
        raise VsaeError(f"{d / CFG} has an invalid metadata.vsae.cfg ({e}); re-export the SAE") from None
    if (cfg.d_in, cfg.d_sae) != (d_in, d_sae):
        raise VsaeError(
            f"{d / CFG} metadata.vsae.cfg says d_in={cfg.d_in}, d_sae={cfg.d_sae} but the weights are "
            f"{d_in} x {d_sae}; the export is inconsistent, re-export it"
        )
    return cfg


def _training_arch_cfg(meta: dict[str, Any], d_in: int, d_sae: int, prov: dict[str, Any]) -> SAEConfig | None:
    """A vsae config (e.g. BatchTopK / Matryoshka) from SAELens's training metadata (None: not one)."""
    spec = _by_training_arch(meta.get("training_architecture"))
    det = meta.get("training_architecture_details")
    if spec is None or not isinstance(det, dict):
        return None
    try:
        kw = _hook(spec.cls, "config_from_saelens", lambda det, d_in, d_sae: {})(det, d_in, d_sae)
        return SAEConfig(arch=spec.name, d_in=d_in, d_sae=d_sae, provenance=prov, **kw)
    except (KeyError, TypeError, ValueError, IndexError, VsaeError):
        return None


def _weights(d: Path, c: dict[str, Any], w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """vsae-layout float32 tensors (``W_enc_Fd``, ``b_enc``, ``W_dec_Fd``, ``b_dec``, ``threshold``),
    shapes checked, with ``apply_b_dec_to_input`` folded into ``b_enc``."""
    W_enc_Fd, W_dec_Fd = w["W_enc"].float().T.contiguous(), w["W_dec"].float()
    b_enc, b_dec = w["b_enc"].float(), w["b_dec"].float()
    F, d_in = W_dec_Fd.shape if W_dec_Fd.dim() == 2 else (-1, -1)
    t = w.get("threshold")
    shapes_ok = W_enc_Fd.shape == (F, d_in) and b_enc.shape == (F,) and b_dec.shape == (d_in,)
    if F < 1 or not shapes_ok or (t is not None and t.shape != (F,)):
        raise VsaeError(f"{d / WEIGHTS} has inconsistent tensor shapes; not a valid SAELens SAE")
    if (c.get("d_in", d_in), c.get("d_sae", F)) != (d_in, F):
        raise VsaeError(
            f"{d / CFG} says d_in={c.get('d_in')}, d_sae={c.get('d_sae')} but the weights are "
            f"{d_in} x {F}; the SAE is damaged"
        )
    if c.get("apply_b_dec_to_input", True):
        b_enc = b_enc - W_enc_Fd @ b_dec
    out = {"W_enc_Fd": W_enc_Fd, "b_enc": b_enc, "W_dec_Fd": W_dec_Fd, "b_dec": b_dec}
    return out | ({} if t is None else {"threshold": t.float().relu()})


def load_saelens(directory: str | os.PathLike) -> Any:
    """A vsae SAE from a SAELens directory (``cfg.json`` + ``sae_weights.safetensors``)."""
    d = Path(directory)
    c, w = _read(d)
    arch = c.get("architecture", "standard")
    if arch not in _IMPORTS:
        raise VsaeError(
            f"SAELens architecture {arch!r} is not supported; vsae imports standard, topk, jumprelu"
        )
    t = _weights(d, c, w)
    W_enc_Fd, b_enc, W_dec_Fd, b_dec = t["W_enc_Fd"], t["b_enc"], t["W_dec_Fd"], t["b_dec"]
    d_sae, d_in = W_dec_Fd.shape
    threshold = t.get("threshold")
    if arch in ("jumprelu", "batchtopk") and threshold is None:
        raise VsaeError(f"{d / WEIGHTS} has no 'threshold' for a {arch} SAE")
    meta = _metadata(c)
    cfg = _vsae_cfg(meta, d, d_in, d_sae)
    base = (
        cfg.provenance
        if cfg is not None
        else {
            k: v
            for k, v in (
                ("model", meta.get("model_name")),
                ("hook", meta.get("hook_name")),
                ("hook_module", meta.get("hook_module")),
            )
            if v
        }
    )
    prov = {**base, "imported_from": "saelens"}
    if cfg is None:
        cfg = _training_arch_cfg(meta, d_in, d_sae, prov)
    if cfg is not None:
        cfg = cfg.replace(provenance=prov)
    # An architecture SAELens saves as another one (BatchTopK / Matryoshka as JumpReLU) is restored
    # as itself only where the saved form is exactly its inference rule (restores_from_saelens).
    spec = get_arch(cfg.arch) if cfg is not None else None
    if cfg is not None and spec is not None and spec.saelens_training is not None:
        if _canonical(arch) == spec.saelens and _hook(spec.cls, "restores_from_saelens", lambda W, t: True)(
            W_dec_Fd, threshold
        ):
            return fill_sae(cfg, W_enc_Fd, b_enc, W_dec_Fd, b_dec, threshold)
        cfg = None
    # The exported architecture itself when the metadata names one that exports as this SAELens
    # architecture (its inference rule is SAELens's), else the native one (relu, topk, jumprelu).
    mine = get_arch(cfg.arch) if cfg is not None else None
    native = mine is not None and mine.saelens == _canonical(arch) and mine.saelens_training is None
    want = mine.name if native and mine is not None else _native(arch).name
    kw = {"k": c.get("k", 100)} if arch == "topk" else {}  # 100: SAELens's default
    if kw and (not isinstance(kw["k"], int) or not 0 < kw["k"] <= d_sae):
        raise VsaeError(f"{d / CFG} has k={kw['k']!r}; a TopK SAE needs an integer k in 1..d_sae={d_sae}")
    if cfg is None or cfg.arch != want:
        cfg = SAEConfig(arch=want, d_in=d_in, d_sae=d_sae, provenance=prov, **kw)
    cfg = cfg.replace(**kw)
    if arch != "topk" or c.get("rescale_acts_by_decoder_norm", False):
        # z' = z * ||W_dec[f]||, W_dec' = W_dec / ||W_dec[f]||: same reconstruction, unit-norm decoder.
        norms = W_dec_Fd.norm(dim=1).clamp_min(1e-12)
        W_enc_Fd, b_enc, W_dec_Fd = W_enc_Fd * norms[:, None], b_enc * norms, W_dec_Fd / norms[:, None]
        if threshold is not None:
            threshold = threshold * norms
    return fill_sae(cfg, W_enc_Fd, b_enc, W_dec_Fd, b_dec, threshold)


def fill_sae(
    cfg: SAEConfig,
    W_enc_Fd: torch.Tensor,
    b_enc: torch.Tensor,
    W_dec_Fd: torch.Tensor,
    b_dec: torch.Tensor,
    threshold: torch.Tensor | None,
) -> Any:
    """A ``cfg.arch`` SAE holding these (vsae-layout) weights, in eval mode."""
    sae = get_arch(cfg.arch).cls(cfg)
    with torch.no_grad():
        sae.W_enc_Fd.copy_(W_enc_Fd)
        sae.b_enc_F.copy_(b_enc)
        sae.W_dec_Fd.copy_(W_dec_Fd)
        sae.b_dec_d.copy_(b_dec)
    _hook(sae, "load_saelens_threshold", lambda t: None)(threshold)
    return sae.eval()
