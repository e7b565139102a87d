"""Save/load SAEs as ``sae.safetensors`` + ``config.json`` (no pickle), and scale folding."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vsae.errors import VsaeError
from vsae.sae.base import SAE
from vsae.sae.batchtopk import BatchTopKSAE
from vsae.sae.config import SAEConfig
from vsae.sae.jumprelu import JumpReluSAE
from vsae.sae.matryoshka import MatryoshkaSAE
from vsae.sae.relu import ReluSAE
from vsae.sae.topk import TopKSAE

FORMAT = "vsae-sae"
VERSION = 1
WEIGHTS = "sae.safetensors"
CONFIG = "config.json"

CLASSES: dict[str, type[SAE]] = {
    "relu": ReluSAE,
    "topk": TopKSAE,
    "batchtopk": BatchTopKSAE,
    "matryoshka": MatryoshkaSAE,
    "jumprelu": JumpReluSAE,
}


def build(cfg: SAEConfig, seed: int | None = None) -> SAE:
    """A freshly initialised SAE of ``cfg.arch`` (deterministic given ``seed``)."""
    sae = CLASSES[cfg.arch](cfg)
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    sae.reset_parameters(gen)
    return sae


@torch.no_grad()
def fold_scale(sae: SAE, scale: float) -> SAE:
    """A copy of an SAE trained on ``x * scale`` that works on raw ``x``.

    Pre-activations, latents, biases and thresholds are divided by ``scale``; the decoder
    rows keep unit norm, so latents come out in the input's original units.
    """
    out = copy.deepcopy(sae)
    if scale == 1.0:
        return out
    out.b_enc_F.div_(scale)
    out.b_dec_d.div_(scale)
    if isinstance(out, BatchTopKSAE) and float(out.threshold) >= 0:
        out.threshold.div_(scale)
    if isinstance(out, JumpReluSAE):
        out.threshold_F.div_(scale)
    return out


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_tensors_atomic(
    tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(sae: SAE, directory: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``sae.safetensors`` and ``config.json`` into ``directory`` (created)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_tensors_atomic(dict(sae.state_dict()), d / WEIGHTS, metadata={"format": FORMAT})
    meta = {"format": FORMAT, "version": VERSION, "cfg": sae.cfg.to_json()}
    if extra:
        meta.update(extra)
    write_json_atomic(d / CONFIG, meta)
    return d


def read_config(directory: Path) -> dict:
    """The parsed config.json of a vsae SAE directory, or a VsaeError naming the problem."""
    p = directory / CONFIG
    if not p.is_file():
        raise VsaeError(
            f"{directory} is not a vsae SAE (no {CONFIG}); pass a run directory written by `vsae train`"
        )
    try:
        meta = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise VsaeError(
            f"{p} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); the checkpoint is damaged"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise VsaeError(
            f"{p} is not a vsae SAE config (format != {FORMAT!r}); for SAELens use `vsae.sae.saelens.load_saelens`"
        )
    if meta.get("version", 0) > VERSION:
        raise VsaeError(f"{p} was written by a newer vsae (version {meta['version']}); upgrade vsae")
    return meta


def resolve(path: str | os.PathLike) -> Path:
    """The SAE directory for a run dir, a sweep with one SAE, or a path to sae.safetensors."""
    p = Path(path)
    if p.is_file():
        p = p.parent
    if not p.exists():
        raise VsaeError(f"SAE path {p} does not exist")
    if (p / CONFIG).is_file():
        return p
    subs = sorted(q for q in p.iterdir() if (q / CONFIG).is_file()) if p.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        names = ", ".join(q.name for q in subs)
        raise VsaeError(f"{p} is a sweep with several SAEs ({names}); pass one of them, e.g. {subs[0]}")
    raise VsaeError(f"{p} is not a vsae SAE (no {CONFIG}); pass a run directory written by `vsae train`")


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_pretrained(
    name_or_path: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """A local SAE directory for ``name_or_path``: the path itself if it exists, else a Hugging Face
    hub repo id downloaded (or found in the cache, which is all that ``HF_HUB_OFFLINE=1`` allows)
    through ``huggingface_hub.snapshot_download``, as transformers' ``from_pretrained`` does."""
    local = Path(name_or_path) / subfolder if subfolder else Path(name_or_path)
    if local.exists() or not _HUB_ID.match(str(name_or_path)):
        if not local.exists():
            raise VsaeError(
                f"SAE path {local} does not exist; pass a directory written by `vsae train` or a hub id"
            )
        return local
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    patterns = [CONFIG, WEIGHTS, f"*/{CONFIG}", f"*/{WEIGHTS}"]
    if subfolder:
        patterns = [f"{subfolder}/{CONFIG}", f"{subfolder}/{WEIGHTS}"]
    try:
        root = snapshot_download(
            str(name_or_path),
            revision=revision,
            allow_patterns=patterns,
            cache_dir=cache_dir,
            local_files_only=bool(local_files_only),
        )
    except LocalEntryNotFoundError:
        raise VsaeError(
            f"SAE {name_or_path!r} is neither a local directory nor in the Hugging Face cache, and the hub "
            "cannot be reached (offline or HF_HUB_OFFLINE=1); check the path, or download it once with network access"
        ) from None
    except (HFValidationError, OSError) as e:  # repo/revision not found and HTTP errors are OSErrors
        raise VsaeError(f"cannot get SAE {name_or_path!r} from the hub ({str(e).splitlines()[0]})") from None
    return Path(root) / subfolder if subfolder else Path(root)


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> SAE:
    """Load an SAE saved by :func:`save` (a run directory or its sae.safetensors), or import a
    SAELens directory (``cfg.json`` + ``sae_weights.safetensors``; :mod:`vsae.sae.saelens`)."""
    p = Path(path).parent if Path(path).is_file() else Path(path)
    if (
        not (p / CONFIG).is_file()
        and (p / "cfg.json").is_file()
        and (p / "sae_weights.safetensors").is_file()
    ):
        from vsae.sae.saelens import load_saelens  # saelens imports this module

        return load_saelens(p).to(device)
    d = resolve(path)
    meta = read_config(d)
    try:
        cfg = SAEConfig.from_json(meta["cfg"])
    except (KeyError, TypeError) as e:
        raise VsaeError(f"{d / CONFIG} has no valid 'cfg' ({e}); the checkpoint is damaged") from None
    sae = CLASSES[cfg.arch](cfg)
    try:
        state = load_file(str(d / WEIGHTS), device="cpu")
    except (SafetensorError, FileNotFoundError, OSError) as e:
        raise VsaeError(
            f"cannot read {d / WEIGHTS} as safetensors ({str(e).splitlines()[0]}); the checkpoint is damaged"
        ) from None
    try:
        sae.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise VsaeError(f"{d / WEIGHTS} does not match its config ({str(e).splitlines()[0]})") from None
    return sae.to(device).eval()
