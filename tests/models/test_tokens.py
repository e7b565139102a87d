"""Token selection against explicit loops."""

import numpy as np
import pytest
import torch

from vsae.errors import VsaeError
from vsae.models import parse_selection, select_tokens


def _acts(B=3, T=7, d=4):
    return torch.arange(B * T * d, dtype=torch.float32).reshape(B, T, d)


@pytest.mark.parametrize("n_prefix", [1, 3])
def test_image_selections_match_loops(n_prefix):
    a = _acts()
    ids = np.array([10, 11, 12])
    rows, im, tok = select_tokens(a, "cls", True, ids, n_prefix=n_prefix)
    assert torch.equal(rows, a[:, 0]) and list(im) == [10, 11, 12] and list(tok) == [0, 0, 0]
    rows, im, tok = select_tokens(a, "mean", True, ids, n_prefix=n_prefix)
    want = torch.stack([sum(a[b, t] for t in range(n_prefix, 7)) / (7 - n_prefix) for b in range(3)])
    torch.testing.assert_close(rows, want)
    assert list(tok) == [-1] * 3
    rows, im, tok = select_tokens(a, "patches", True, ids, n_prefix=n_prefix)
    pairs = [(b, t) for b in range(3) for t in range(n_prefix, 7)]
    assert torch.equal(rows, torch.stack([a[b, t] for b, t in pairs]))
    assert list(im) == [ids[b] for b, _ in pairs] and list(tok) == [t for _, t in pairs]
    rows, im, tok = select_tokens(a, "all", True, ids, n_prefix=n_prefix)
    assert rows.shape == (21, 4) and list(tok) == list(range(7)) * 3


def test_random_k_is_deterministic_per_image_and_seed():
    a = _acts(B=4, T=17)
    ids = np.array([0, 1, 2, 3])
    rows, im, tok = select_tokens(a, "random:5", True, ids, seed=7)
    assert rows.shape == (20, 4) and list(im) == [0] * 5 + [1] * 5 + [2] * 5 + [3] * 5
    for b in range(4):
        t = tok[b * 5 : (b + 1) * 5]
        assert len(set(t)) == 5 and t.min() >= 1 and t.max() <= 16  # distinct patch tokens, never CLS
        assert torch.equal(rows[b * 5 : (b + 1) * 5], a[b, torch.as_tensor(t)])
    # the same image gets the same tokens in another batch position (resume / sharding)
    _, _, tok2 = select_tokens(a[2:3], "random:5", True, np.array([2]), seed=7)
    assert list(tok2) == list(tok[10:15])
    _, _, tok3 = select_tokens(a, "random:5", True, ids, seed=8)
    assert list(tok3) != list(tok)


def test_pooled_output_gives_one_row_per_image():
    rows, im, tok = select_tokens(torch.ones(2, 5), "patches", True, np.array([4, 5]))
    assert rows.shape == (2, 5) and list(tok) == [-1, -1]


def test_feature_map_is_read_as_tokens():
    fm = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    rows, im, tok = select_tokens(fm, "all", False, np.array([0, 1]))
    assert rows.shape == (8, 3)
    assert torch.equal(rows[1], fm[0, :, 0, 1])


def test_text_selection_excludes_padding():
    a = _acts(B=2, T=5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    rows, im, tok = select_tokens(a, "all", False, np.array([0, 1]), attention_mask_BT=mask)
    assert list(im) == [0, 0, 0, 1, 1, 1, 1, 1] and list(tok) == [0, 1, 2, 0, 1, 2, 3, 4]
    assert torch.equal(rows[:3], a[0, :3])
    rows, _, tok = select_tokens(a, "mean", False, np.array([0, 1]), attention_mask_BT=mask)
    torch.testing.assert_close(rows[0], a[0, :3].mean(0))
    # left padding: positions count real tokens only
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    rows, _, tok = select_tokens(a, "all", False, np.array([0, 1]), attention_mask_BT=left)
    assert list(tok[:3]) == [0, 1, 2] and torch.equal(rows[:3], a[0, 2:])
    rows, im, tok = select_tokens(a, "random:4", False, np.array([0, 1]), attention_mask_BT=mask)
    assert list(im) == [0, 0, 0, 1, 1, 1, 1]  # only 3 real tokens in the first text
    with pytest.raises(VsaeError, match="no CLS"):
        select_tokens(a, "cls", False, np.array([0, 1]), attention_mask_BT=mask)


def test_errors():
    with pytest.raises(VsaeError, match="valid: cls, mean, patches, all, random:K"):
        parse_selection("random:0")
    with pytest.raises(VsaeError, match="no CLS token"):
        select_tokens(_acts(), "cls", False, np.array([0, 1, 2]))
    with pytest.raises(VsaeError, match="lower K"):
        select_tokens(_acts(), "random:7", True, np.array([0, 1, 2]))
