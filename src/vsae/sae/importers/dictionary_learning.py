"""dictionary_learning (saprmarks/dictionary_learning; the format of Pach et al.'s released SAEs):
a directory with ``ae.pt`` (a torch state dict) and ``config.json`` (``{"trainer": {"dict_class",
"activation_dim", "dict_size", "k", "lm_name", "layer", "submodule_name", ...}, "buffer": ...}``).

Each dictionary class's inference rule, as in the library's ``encode``:

    AutoEncoder            relu(encoder(x - bias)); the decoder normalised to unit columns with
                           the encoder rescaled, as ``AutoEncoder.from_pretrained`` does by default
    AutoEncoderTopK        top-k of relu(encoder(x - b_dec))
    BatchTopKSAE           relu(encoder(x - b_dec)) kept where > threshold (the learned one)
    MatryoshkaBatchTopKSAE relu((x - b_dec) @ W_enc + b_enc) kept where > threshold; group_sizes
    JumpReluAutoEncoder    relu(pre * (pre > threshold)), pre = x @ W_enc + b_enc

``x - b`` is folded into the encoder bias (``b_enc - W_enc b``), so vsae computes the same latents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vsae.errors import VsaeError
from vsae.sae.importers.common import build, json_or_none, load_pt, need, provenance, read_json
from vsae.sae.importers.registry import Imported, register_importer
from vsae.sae.sae_config import SAEConfig

NAME = "dictionary_learning"
WEIGHTS, CONFIG = "ae.pt", "config.json"
CLASSES = ("AutoEncoder", "AutoEncoderTopK", "BatchTopKSAE", "MatryoshkaBatchTopKSAE", "JumpReluAutoEncoder")


def _files(path: Path) -> tuple[Path, Path] | None:
    """(weights, config.json): ``ae.pt`` in a trainer directory, else its latest
    ``checkpoints/ae_<step>.pt``; or a ``.pt`` file given directly (config beside it or one up)."""
    if path.is_file():
        d = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        return (path, d / CONFIG) if path.suffix == ".pt" else None
    if (path / WEIGHTS).is_file():
        return path / WEIGHTS, path / CONFIG
    steps = sorted(
        (int(q.stem[3:]), q) for q in (path / "checkpoints").glob("ae_*.pt") if q.stem[3:].isdigit()
    )
    return (steps[-1][1], path / CONFIG) if steps else None


def _class(trainer: dict[str, Any], state: dict[str, torch.Tensor]) -> str:
    """The dictionary class: the config's ``dict_class``, else told apart by the state dict's keys."""
    name = trainer.get("dict_class")
    if isinstance(name, str) and name:
        return name
    if "group_sizes" in state:
        return "MatryoshkaBatchTopKSAE"
    if "W_enc" in state:
        return "JumpReluAutoEncoder"
    if "k" in state:
        return "BatchTopKSAE" if "BatchTopK" in str(trainer.get("trainer_class", "")) else "AutoEncoderTopK"
    return "AutoEncoder"


@register_importer(NAME, f"{WEIGHTS} + {CONFIG} with a 'trainer' entry")
class DictionaryLearning:
    @staticmethod
    def detect(path: Path) -> bool:
        found = _files(path)
        cfg = json_or_none(found[1]) if found else None
        return cfg is not None and isinstance(cfg.get("trainer"), dict)

    @staticmethod
    def load(path: Path) -> Imported:
        found = _files(path)
        if found is None:
            raise VsaeError(
                f"{path} is not a {NAME} SAE (needs {WEIGHTS} or checkpoints/ae_<step>.pt + {CONFIG})"
            )
        where, cfg_path = found
        meta = read_json(cfg_path, NAME)
        trainer = meta.get("trainer")
        if not isinstance(trainer, dict):
            raise VsaeError(f"{cfg_path} has no 'trainer' entry; not a {NAME} config")
        state = load_pt(where, NAME)
        cls = _class(trainer, state)
        prov = provenance(
            NAME,
            trainer.get("lm_name"),
            trainer.get("submodule_name") or trainer.get("layer"),
            layer=trainer.get("layer"),
            dict_class=cls,
        )
        threshold = None
        if cls == "AutoEncoder":
            W, b, W_dec_dF, bias = need(
                state, ["encoder.weight", "encoder.bias", "decoder.weight", "bias"], where, NAME
            )
            W_dec_Fd = W_dec_dF.T
            # AutoEncoder.from_pretrained(normalize_decoder=True): unit decoder columns, encoder rescaled
            norms = W_dec_Fd.norm(dim=1).clamp_min(1e-12)
            W, b, W_dec_Fd = W * norms[:, None], b * norms, W_dec_Fd / norms[:, None]
            cfg = SAEConfig(arch="relu", d_in=W.shape[1], d_sae=W.shape[0], provenance=prov)
            return Imported(
                build(cfg, W, b - W @ bias, W_dec_Fd, bias, where, NAME), NAME, [where, cfg_path], meta
            )
        if cls in ("AutoEncoderTopK", "BatchTopKSAE"):
            W, b, W_dec_dF, b_dec, k = need(
                state, ["encoder.weight", "encoder.bias", "decoder.weight", "b_dec", "k"], where, NAME
            )
            arch = "topk" if cls == "AutoEncoderTopK" else "batchtopk"
            if arch == "batchtopk":
                (t,) = need(state, ["threshold"], where, NAME)
                threshold = t.reshape(-1)[:1].clamp_min(
                    0
                )  # < 0 (never set): every positive latent, as the library
            cfg = SAEConfig(arch=arch, d_in=W.shape[1], d_sae=W.shape[0], k=int(k), provenance=prov)
            sae = build(cfg, W, b - W @ b_dec, W_dec_dF.T, b_dec, where, NAME, threshold)
            return Imported(sae, NAME, [where, cfg_path], meta)
        if cls == "MatryoshkaBatchTopKSAE":
            W_dF, b, W_dec_Fd, b_dec, k, t, sizes = need(
                state, ["W_enc", "b_enc", "W_dec", "b_dec", "k", "threshold", "group_sizes"], where, NAME
            )
            F = W_dF.shape[1]
            groups = tuple(float(s) / F for s in sizes.tolist())
            cfg = SAEConfig(
                arch="matryoshka", d_in=W_dF.shape[0], d_sae=F, k=int(k), groups=groups, provenance=prov
            )
            if list(cfg.nested_groups) != [int(s) for s in sizes.tolist()]:
                raise VsaeError(f"{where} has group_sizes {sizes.tolist()} that do not sum to dict_size {F}")
            W = W_dF.T
            sae = build(cfg, W, b - W @ b_dec, W_dec_Fd, b_dec, where, NAME, t.reshape(-1)[:1].clamp_min(0))
            return Imported(sae, NAME, [where, cfg_path], meta)
        if cls == "JumpReluAutoEncoder":
            W_dF, b, W_dec_Fd, b_dec, t = need(
                state, ["W_enc", "b_enc", "W_dec", "b_dec", "threshold"], where, NAME
            )
            W = W_dF.T
            if trainer.get("apply_b_dec_to_input", False):
                b = b - W @ b_dec
            cfg = SAEConfig(arch="jumprelu", d_in=W.shape[1], d_sae=W.shape[0], provenance=prov)
            return Imported(build(cfg, W, b, W_dec_Fd, b_dec, where, NAME, t), NAME, [where, cfg_path], meta)
        raise VsaeError(f"{cfg_path}: dict_class {cls!r} is not supported; vsae imports {', '.join(CLASSES)}")
