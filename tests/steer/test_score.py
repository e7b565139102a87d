"""The steering score against a direct, loop-by-loop implementation of METRICS.md's formula."""

from __future__ import annotations

import math

import numpy as np
import torch

from vsae.steer.mllm import first_word
from vsae.steer.score import latent_embeddings, steering_score


def _cos(a, b):
    a, b = a.double().tolist(), b.double().tolist()
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_steering_score_matches_direct_loops():
    g = torch.Generator().manual_seed(0)
    L, N, D, M = 4, 5, 6, 20
    emb_MD = torch.randn(M, D, generator=g)
    hai = np.array([[0, 3, 5], [1, 2, -1], [7, 8, 9], [4, 4, 10]])
    words = ["red", "star", "blue", "cross", "dog"]
    text = {w: torch.randn(D, generator=g) for w in words}
    steered = [[words[(j + n) % 5] for n in range(N)] for j in range(L)]
    base = [words[n % 3] for n in range(N)]

    h = latent_embeddings(hai, emb_MD)
    s = steering_score(
        h,
        torch.stack([torch.stack([text[w] for w in row]) for row in steered]),
        torch.stack([text[w] for w in base]),
    )

    # direct: h_f = mean of the HAI embeddings; score = mean over (f, n) of cos(h_f, t)
    hf = []
    for row in hai:
        keep = [i for i in row if i >= 0]
        hf.append(sum(emb_MD[i] for i in keep) / len(keep))
    cs = [[_cos(hf[j], text[steered[j][n]]) for n in range(N)] for j in range(L)]
    cb = [[_cos(hf[j], text[base[n]]) for n in range(N)] for j in range(L)]
    assert math.isclose(s.steered, sum(map(sum, cs)) / (L * N), rel_tol=1e-9)
    assert math.isclose(s.baseline, sum(map(sum, cb)) / (L * N), rel_tol=1e-9)
    np.testing.assert_allclose(s.steered_L, [sum(r) / N for r in cs], rtol=1e-9)
    toward = sum(cs[j][n] > cb[j][n] + 1e-6 for j in range(L) for n in range(N)) / (L * N)
    away = sum(cs[j][n] < cb[j][n] - 1e-6 for j in range(L) for n in range(N)) / (L * N)
    assert math.isclose(s.moved_toward, toward) and math.isclose(s.moved_away, away)
    assert 0 < s.moved_toward < 1  # the example is not degenerate


def test_same_answers_is_a_tie():
    h = torch.randn(2, 4)
    t = torch.randn(3, 4)
    s = steering_score(h, t.expand(2, 3, 4), t)
    # the same cosines by two reductions (einsum, matmul): equal up to rounding, never "moved"
    assert math.isclose(s.steered, s.baseline, rel_tol=1e-12, abs_tol=1e-15)
    assert s.moved_toward == 0 and s.moved_away == 0


def test_first_word():
    assert first_word("  Star. It is a star") == "star"
    assert first_word("") == ""
    assert first_word("**Triangle**") == "triangle"
