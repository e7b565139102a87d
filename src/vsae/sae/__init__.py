"""Sparse autoencoders: one module per architecture on a shared base, save/load, SAELens I/O.

sae = vsae.sae.build(SAEConfig(arch="batchtopk", d_in=768, d_sae=768 * 16, k=20))
out = sae(x_Bd)                # SAEOutput(x_hat, z, losses)
vsae.sae.save(sae, "run/sae"); sae = vsae.sae.load("run/sae")

Architectures register themselves (:mod:`vsae.sae.arch_registry`; the built-in ones are the files
of :mod:`vsae.sae.archs`). Names are imported on first use, so ``vsae.sae.SAEConfig`` and the
registry load no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

if TYPE_CHECKING:
    from vsae.sae.arch_registry import ArchSpec, arch_names, get_arch, register_arch, unregister_arch
    from vsae.sae.base import SAE, SAEOutput, SparseCodes
    from vsae.sae.batched import encode_batched
    from vsae.sae.io import build, fold_scale, load, save
    from vsae.sae.sae_config import DEFAULT_GROUPS, SAEConfig
    from vsae.sae.sweep import expand_sweep, run_name

_API = {
    "SAE": "vsae.sae.base",
    "SAEOutput": "vsae.sae.base",
    "SparseCodes": "vsae.sae.base",
    "encode_batched": "vsae.sae.batched",
    "DEFAULT_GROUPS": "vsae.sae.sae_config",
    "SAEConfig": "vsae.sae.sae_config",
    "build": "vsae.sae.io",
    "fold_scale": "vsae.sae.io",
    "load": "vsae.sae.io",
    "save": "vsae.sae.io",
    "ArchSpec": "vsae.sae.arch_registry",
    "arch_names": "vsae.sae.arch_registry",
    "get_arch": "vsae.sae.arch_registry",
    "register_arch": "vsae.sae.arch_registry",
    "unregister_arch": "vsae.sae.arch_registry",
    "expand_sweep": "vsae.sae.sweep",
    "run_name": "vsae.sae.sweep",
}

__all__ = [
    "DEFAULT_GROUPS",
    "SAE",
    "ArchSpec",
    "SAEConfig",
    "SAEOutput",
    "SparseCodes",
    "arch_names",
    "build",
    "encode_batched",
    "expand_sweep",
    "fold_scale",
    "get_arch",
    "load",
    "register_arch",
    "run_name",
    "save",
    "unregister_arch",
]


__getattr__, __dir__ = lazy_attributes(__name__, _API)
