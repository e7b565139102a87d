import numpy as np
import pytest
import scipy.sparse as sp

from vsae.errors import VsaeError
from vsae.eval.readers import image_view, load_array


class Rows:
    def __init__(self, x, img, tok, sparse=False):
        self.x, self.image_index, self.token_index, self.sparse = x, img, tok, sparse
        self.name, self.d = "fake", x.shape[1]

    def __len__(self):
        return self.x.shape[0]

    def read(self, a, b):
        return sp.csr_matrix(self.x[a:b]) if self.sparse else self.x[a:b]


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("max_rows", [1, 5, 1000])
def test_pooling_matches_direct(sparse, max_rows):
    rng = np.random.default_rng(0)
    counts = [3, 1, 4, 2]
    img = np.repeat([0, 2, 3, 7], counts)  # gaps in image ids (skipped images)
    tok = np.concatenate([np.arange(c) for c in counts])
    x = rng.random((img.size, 5)) * (rng.random((img.size, 5)) < 0.5)
    rows = Rows(x, img, tok, sparse)
    for pooling, ref in (
        ("mean", [x[img == i].mean(0) for i in (0, 2, 3, 7)]),
        ("cls", [x[(img == i) & (tok == 0)][0] for i in (0, 2, 3, 7)]),
    ):
        v = image_view(rows, pooling)
        assert v.images.tolist() == [0, 2, 3, 7] and v.pooling == pooling
        parts = list(v.chunks(images_per_chunk=3, max_rows=max_rows)())
        assert [p[0] for p in parts] == sorted({p[0] for p in parts})
        got = np.concatenate([p.toarray() if sp.issparse(p) else p for _, p in parts])
        np.testing.assert_allclose(got, np.array(ref), rtol=1e-6)
    assert image_view(rows, "auto").pooling == "mean"
    one = Rows(x[:4], np.arange(4), np.zeros(4, int))
    assert image_view(one, "auto").pooling == "none"


def test_errors(tmp_path):
    rows = Rows(np.zeros((3, 2)), np.array([1, 0, 2]), np.zeros(3, int))
    with pytest.raises(VsaeError, match="not in image order"):
        image_view(rows)
    rows = Rows(np.zeros((3, 2)), np.array([0, 0, 1]), np.array([1, 2, 0]))
    with pytest.raises(VsaeError, match="lack a CLS row"):
        image_view(rows, "cls")
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(VsaeError, match="shape"):
        from vsae.eval.readers import ArrayRows

        ArrayRows(load_array(tmp_path / "a.npy"), "a.npy")
    with pytest.raises(VsaeError, match="does not exist"):
        load_array(tmp_path / "missing.npy")


def test_similarity_store_from_other_images_is_refused(tmp_path):
    import torch

    from vsae.errors import VsaeError
    from vsae.eval.readers import similarity_embeddings
    from vsae.store import StoreWriter

    def store(name, split):
        prov = {"data": {"kind": "folder", "root": "/data/world", "split": split, "n_items": 10}}
        w = StoreWriter.create_or_resume(tmp_path / name, d=3, provenance=prov)
        w.add(torch.randn(10, 3), np.arange(10), -np.ones(10, np.int64))
        w.mark_images_done(10)
        w.close()
        return prov

    acts_prov = store("acts", "test")
    store("emb_train", "train")
    store("emb_test", "test")
    with pytest.raises(VsaeError, match=r"split train.*split test"):
        similarity_embeddings(tmp_path / "emb_train", np.arange(10), "acts", acts_prov)
    assert similarity_embeddings(tmp_path / "emb_test", np.arange(10), "acts", acts_prov).shape == (10, 3)
