"""Shared fixtures of the steering tests: tiny random models and a tiny SAE (vsae.sae)."""

from __future__ import annotations

import pytest
import torch

import vsae.models
import vsae.sae
from vsae.models.tiny_models import build_tiny


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    path = build_tiny("clip_vision", tmp_path_factory.mktemp("clip"))
    return vsae.models.load(str(path))


@pytest.fixture(scope="module")
def tiny_llava_dir(tmp_path_factory):
    return build_tiny("llava", tmp_path_factory.mktemp("llava"))


def make_sae(d_in: int = 32, d_sae: int = 128, k: int = 8, seed: int = 0):
    """A random top-k SAE with non-zero biases (so that decode is affine, not linear)."""
    sae = vsae.sae.build(vsae.sae.SAEConfig(arch="topk", d_in=d_in, d_sae=d_sae, k=k), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        sae.b_enc_F.copy_(0.1 * torch.randn(d_sae, generator=g))
        sae.b_dec_d.copy_(0.1 * torch.randn(d_in, generator=g))
    return sae.eval()


@pytest.fixture
def sae():
    return make_sae()


@pytest.fixture(scope="module")
def pixel_values():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
