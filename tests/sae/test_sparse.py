"""The sparse encode/decode kernels against dense autograd."""

import torch

from vsae.sae import SAEConfig, build
from vsae.sae.archs.batchtopk import kth_largest
from vsae.sae.sparse import Pattern, sparse_decode, sparse_encode_values


def _random_csr(B, F, per_row, g):
    col = torch.stack([torch.randperm(F, generator=g)[:per_row] for _ in range(B)]).reshape(-1)
    row = torch.arange(B).repeat_interleave(per_row)
    return row, col, Pattern(row, col, B, F)


def test_sparse_decode_matches_dense_forward_and_backward():
    g = torch.Generator().manual_seed(0)
    B, F, d, k = 7, 40, 5, 3
    row, col, pat = _random_csr(B, F, k, g)
    val = torch.rand(B * k, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(F, d, generator=g, dtype=torch.float64, requires_grad=True)
    out = sparse_decode(val, W, pat)
    gout = torch.randn(B, d, generator=g, dtype=torch.float64)
    (out * gout).sum().backward()
    gv, gW = val.grad.clone(), W.grad.clone()
    val.grad = W.grad = None
    z = torch.zeros(B, F, dtype=torch.float64).index_put((row, col), val)
    ref = z @ W
    (ref * gout).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(gv, val.grad)
    torch.testing.assert_close(gW, W.grad)
    assert torch.autograd.gradcheck(
        lambda v, w: sparse_decode(v, w, pat),
        (val.detach().requires_grad_(), W.detach().requires_grad_()),
    )


def test_sparse_encode_values_gradients_match_dense():
    g = torch.Generator().manual_seed(1)
    B, F, d, k = 6, 30, 4, 5
    row, col, pat = _random_csr(B, F, k, g)
    x = torch.randn(B, d, generator=g, dtype=torch.float64, requires_grad=True)
    W = torch.randn(F, d, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(F, generator=g, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        pre = x @ W.T + b
    vals = sparse_encode_values(pre[row, col], x, W, b, pat)
    gv = torch.randn(B * k, generator=g, dtype=torch.float64)
    (vals * gv).sum().backward()
    got = [t.grad.clone() for t in (x, W, b)]
    for t in (x, W, b):
        t.grad = None
    ref = (x @ W.T + b)[row, col]
    (ref * gv).sum().backward()
    torch.testing.assert_close(vals, ref.detach())
    for a, t in zip(got, (x, W, b)):
        torch.testing.assert_close(a, t.grad)


def test_topk_sae_sparse_training_step_equals_dense_reference():
    torch.manual_seed(0)
    cfg = SAEConfig(arch="topk", d_in=12, d_sae=48, k=4, aux_k=0)
    sae = build(cfg, seed=3)
    with torch.no_grad():
        sae.b_enc_F.normal_()  # some negative pre-activations among the top k
    x = torch.randn(32, 12)
    out = sae(x)
    out.losses["loss"].backward()
    got = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    pre = x @ sae.W_enc_Fd.T + sae.b_enc_F
    v, i = pre.topk(4, dim=-1)
    z = torch.zeros_like(pre).scatter(-1, i, v.relu())
    x_hat = z @ sae.W_dec_Fd + sae.b_dec_d
    (x_hat - x).pow(2).sum(-1).mean().backward()
    torch.testing.assert_close(out.x_hat, x_hat.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.z, z.detach(), atol=1e-6, rtol=1e-5)
    for n, p in sae.named_parameters():
        torch.testing.assert_close(got[n], p.grad, atol=1e-5, rtol=1e-4)


def test_kth_largest_exact_on_large_input():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800_000, generator=g).relu()
    for K in (1, 1000, 40_000):
        assert float(kth_largest(x, K)) == float(x.topk(K).values.min())
