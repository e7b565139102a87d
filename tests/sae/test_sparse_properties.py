"""Properties of the sparse encode/decode (vsae.sae.sparse) over random sizes and patterns
(hypothesis): the CSR offsets count each row's entries, the CSC view is the same entries in
column order, the sparse decode and the selected pre-activations (values and gradients) equal the
dense computation, and the top-k SAEs keep the largest pre-activations: at most k per row (TopK),
the k * B largest of the batch (BatchTopK, ties kept); their sparse decode equals the dense one."""

import torch
from hypothesis import given
from hypothesis import strategies as st

from vsae.sae import SAEConfig, build
from vsae.sae.sparse import Pattern, csr_from_rows, sparse_decode, sparse_encode_values


@st.composite
def patterns(draw: st.DrawFn) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """(B, F, row_N, col_N): rows sorted, each row a set of distinct latents (possibly none)."""
    B = draw(st.integers(0, 6))
    F = draw(st.integers(1, 9))
    rows, cols = [], []
    for r in range(B):
        chosen = draw(st.lists(st.integers(0, F - 1), max_size=F, unique=True))
        rows += [r] * len(chosen)
        cols += chosen
    return B, F, torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


@given(patterns())
def test_csr_and_csc_describe_the_same_entries(p: tuple[int, int, torch.Tensor, torch.Tensor]) -> None:
    B, F, row, col = p
    pat = Pattern(row, col, B, F)
    indptr = csr_from_rows(row, B)
    assert torch.equal(indptr, pat.indptr_B1) and indptr.dtype == torch.long
    assert indptr.tolist() == [0] + torch.bincount(row, minlength=B).cumsum(0).tolist()
    order, offsets, rows_in_col_order = pat.csc
    assert sorted(order.tolist()) == list(range(len(row)))  # a permutation of the entries
    assert torch.equal(col[order], col[order].sort().values)  # in column order
    assert offsets.tolist() == [0] + torch.bincount(col, minlength=F).cumsum(0).tolist()
    assert torch.equal(rows_in_col_order, row[order])


@given(patterns(), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_sparse_decode_and_encode_equal_the_dense_computation(
    p: tuple[int, int, torch.Tensor, torch.Tensor], d: int, seed: int
) -> None:
    B, F, row, col = p
    pat = Pattern(row, col, B, F)
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64, generator=g)
    x = torch.randn(B, d, **f64, requires_grad=True)
    W_enc = torch.randn(F, d, **f64, requires_grad=True)
    b_enc = torch.randn(F, **f64, requires_grad=True)
    W_dec = torch.randn(F, d, **f64, requires_grad=True)
    leaves = (x, W_enc, b_enc, W_dec)

    def dense() -> torch.Tensor:
        pre = x @ W_enc.T + b_enc
        z = torch.zeros(B, F, dtype=torch.float64).index_put((row, col), pre[row, col])
        return z @ W_dec

    def sparse() -> torch.Tensor:
        pre_N = (x @ W_enc.T + b_enc)[row, col].detach()
        return sparse_decode(sparse_encode_values(pre_N, x, W_enc, b_enc, pat), W_dec, pat)

    out = {}
    g_out = torch.randn(B, d, **f64)
    for name, fn in (("dense", dense), ("sparse", sparse)):
        y = fn()
        grads = torch.autograd.grad((y * g_out).sum(), leaves, allow_unused=True)
        out[name] = (y.detach(), [torch.zeros_like(t) if gr is None else gr for t, gr in zip(leaves, grads)])
    torch.testing.assert_close(out["sparse"][0], out["dense"][0])
    for got, want in zip(out["sparse"][1], out["dense"][1]):
        torch.testing.assert_close(got, want)


@given(
    st.sampled_from(["topk", "batchtopk"]),
    st.integers(1, 6),  # B
    st.integers(2, 12),  # F
    st.integers(1, 4),  # d
    st.data(),
)
def test_topk_codes_are_the_k_largest_and_decode_sparsely(
    arch: str, B: int, F: int, d: int, data: st.DataObject
) -> None:
    k = data.draw(st.integers(1, F))
    sae = build(SAEConfig(arch=arch, d_in=d, d_sae=F, k=k, aux_k=0), seed=data.draw(st.integers(0, 99)))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(B, d, generator=g)
    pre = sae.pre_acts(x).detach()
    with torch.no_grad():
        out = sae(x)
    assert out.codes is not None
    z = out.z.detach()
    active = z != 0
    assert (z >= 0).all()  # ReLU of the selected pre-activations
    torch.testing.assert_close(z[active], pre[active])
    if arch == "topk":
        assert (active.sum(1) <= k).all()
        kth = pre.topk(k, dim=1).values[:, -1:].expand_as(pre)  # each row's k-th largest
        torch.testing.assert_close(sae.encode(x), z)  # inference = training codes, row by row
    else:  # the k * B largest of the whole batch (ties at the last value all kept)
        kth = pre.flatten().topk(k * B).values.min().expand_as(pre)
        assert torch.equal(active, (pre >= kth) & (pre > 0))
    assert (pre[active] >= kth[active]).all()  # only the largest are kept ...
    assert active[(pre > kth) & (pre > 0)].all()  # ... and every larger positive one is
    # the sparse reconstruction equals the dense decode of the codes
    torch.testing.assert_close(out.x_hat, sae.decode(z), rtol=1e-5, atol=1e-5)
