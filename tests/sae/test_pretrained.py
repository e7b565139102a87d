"""SAE.from_pretrained / save_pretrained (local dir and hub cache) and encode/decode on any input kind."""

import shutil

import numpy as np
import pytest
import torch

from vsae.errors import VsaeError
from vsae.sae import SAE, build
from vsae.sae.archs.batchtopk import BatchTopKSAE
from vsae.sae.archs.relu import ReluSAE
from vsae.sae.sae_config import config_for


def tiny(arch="topk"):
    return build(config_for(arch, d_in=8, d_sae=32, k=4), seed=0)


def test_save_pretrained_from_pretrained_roundtrip(tmp_path):
    sae = tiny()
    sae.save_pretrained(tmp_path / "s")
    back = SAE.from_pretrained(tmp_path / "s")
    assert type(back) is type(sae) and back.cfg == sae.cfg
    for k, v in sae.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k
    with pytest.raises(VsaeError, match="holds a TopKSAE, not a ReluSAE"):
        ReluSAE.from_pretrained(tmp_path / "s")
    with pytest.raises(VsaeError, match="does not exist"):
        SAE.from_pretrained(tmp_path / "nothing-here")


def _fake_hub_cache(cache, repo_id, files_dir, subfolder=None):
    """The layout huggingface_hub writes: models--o--n/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    root = cache / ("models--" + repo_id.replace("/", "--"))
    snap = root / "snapshots" / commit / (subfolder or "")
    shutil.copytree(files_dir, snap)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)


def test_from_pretrained_hub_id_offline_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sae = tiny("batchtopk")
    sae.save_pretrained(tmp_path / "files")
    _fake_hub_cache(tmp_path / "cache", "someone/sae-a", tmp_path / "files")
    _fake_hub_cache(tmp_path / "cache", "someone/sae-b", tmp_path / "files", subfolder="layer22")
    a = BatchTopKSAE.from_pretrained("someone/sae-a", cache_dir=tmp_path / "cache")
    b = SAE.from_pretrained("someone/sae-b", subfolder="layer22", cache_dir=tmp_path / "cache")
    x = torch.randn(5, 8)
    assert torch.equal(a.encode(x), sae.encode(x)) and torch.equal(b.encode(x), sae.encode(x))
    with pytest.raises(VsaeError, match="neither a local directory nor in the Hugging Face cache") as e:
        SAE.from_pretrained("someone/absent", cache_dir=tmp_path / "cache")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("arch", ["relu", "topk", "batchtopk", "matryoshka", "jumprelu"])
@torch.no_grad()
def test_encode_decode_accept_numpy_and_half_tensors(arch):
    sae = tiny(arch).eval()
    x32 = torch.randn(6, 8)
    z32 = sae.encode(x32)
    xh32 = sae.decode(z32)
    # numpy in, numpy out, same values (computed in float32)
    z_np = sae.encode(x32.numpy())
    assert isinstance(z_np, np.ndarray) and z_np.dtype == np.float32
    np.testing.assert_array_equal(z_np, z32.numpy())
    xh_np = sae.decode(z_np)
    assert isinstance(xh_np, np.ndarray) and xh_np.shape == (6, 8)
    np.testing.assert_allclose(xh_np, xh32.detach().numpy(), rtol=1e-6, atol=1e-6)
    # numpy float16 stays float16
    assert sae.encode(x32.numpy().astype(np.float16)).dtype == np.float16
    # half tensors: computed in the SAE's float32 (same as casting by hand), returned in the input dtype
    for dt in (torch.float16, torch.bfloat16):
        xd = x32.to(dt)
        z = sae.encode(xd)
        assert z.dtype == dt and z.shape == (6, 32)
        assert torch.equal(z, sae.encode(xd.float()).to(dt))
        assert sae.decode(z).dtype == dt
    # one row [d] -> [F]
    assert sae.encode(x32[0]).shape == (32,)
    torch.testing.assert_close(sae.encode(x32[0]), z32[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        sae.encode([[0.0] * 8])


def test_float32_tensors_keep_autograd():
    sae = tiny("relu")
    x = torch.randn(3, 8, requires_grad=True)
    sae.decode(sae.encode(x)).sum().backward()
    assert x.grad is not None and sae.W_enc_Fd.grad is not None
