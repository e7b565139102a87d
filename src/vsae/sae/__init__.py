"""Sparse autoencoders: one module per architecture on a shared base, save/load, SAELens I/O.

sae = vsae.sae.build(SAEConfig(arch="batchtopk", d_in=768, d_sae=768 * 16, k=20))
out = sae(x_Bd)                # SAEOutput(x_hat, z, losses)
vsae.sae.save(sae, "run/sae"); sae = vsae.sae.load("run/sae")
"""

from vsae.sae.base import SAE, SAEOutput, SparseCodes
from vsae.sae.config import ARCHS, DEFAULT_GROUPS, SAEConfig
from vsae.sae.io import build, fold_scale, load, save

__all__ = [
    "ARCHS",
    "DEFAULT_GROUPS",
    "SAE",
    "SAEConfig",
    "SAEOutput",
    "SparseCodes",
    "build",
    "fold_scale",
    "load",
    "save",
]
