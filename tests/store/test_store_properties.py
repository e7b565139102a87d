"""Properties of the store writer and reader over random stores (hypothesis): any storage dtype,
width, shard size, batch sizes (empty batches and images without rows included), dense and sparse:
what is read back is what was written (rows as rounded to the storage dtype, image and token ids,
class labels, in order, also through `csr`, index reads and `iter_sequential`), and a run killed
after a committed shard then resumed writes the same store as one pass."""

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from vsae.store import ActivationStore, SparseStoreWriter, StoreWriter
from vsae.store.validate import STORAGE_DTYPES


@st.composite
def stores(draw: st.DrawFn) -> dict:
    """A store to write: per image, its rows (0 to 4 rows; sparse rows are mostly zero)."""
    sparse = draw(st.booleans())
    d = draw(st.integers(1, 6))
    rows_per_image = draw(st.lists(st.integers(0, 4), min_size=1, max_size=8))
    n = sum(rows_per_image)
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randn(n, d, generator=g)
    if sparse:
        x = x * (torch.rand(n, d, generator=g) < 0.4)
    return {
        "sparse": sparse,
        "dtype": "float32" if sparse else draw(st.sampled_from(sorted(STORAGE_DTYPES))),
        "d": d,
        "rows_per_shard": draw(st.integers(1, 7)),
        "images_per_batch": draw(st.integers(1, 3)),
        "rows_per_image": rows_per_image,
        "x": x,
        "tokens": torch.randint(-1, 50, (n,), generator=g).numpy(),
        "classes": draw(st.integers(1, 3)),
    }


def _open_writer(path: Path, s: dict) -> StoreWriter:
    writer = SparseStoreWriter if s["sparse"] else StoreWriter
    return writer.create_or_resume(path, d=s["d"], dtype=s["dtype"], rows_per_shard=s["rows_per_shard"])


def _write(path: Path, s: dict, die_at: int | None = None) -> int:
    """Write the images from `next_image` on in batches and close; with `die_at`, stop without
    closing after the batch holding image `die_at`, as a killed run. Returns the images committed."""
    w = _open_writer(path, s)
    n_img = len(s["rows_per_image"])
    first = np.concatenate([[0], np.cumsum(s["rows_per_image"])])  # first row of each image
    for a in range(w.next_image, n_img, s["images_per_batch"]):
        b = min(a + s["images_per_batch"], n_img)
        img = np.repeat(np.arange(a, b), s["rows_per_image"][a:b])
        w.add(s["x"][first[a] : first[b]], img, s["tokens"][first[a] : first[b]])
        w.mark_images_done(b)
        if die_at is not None and b > die_at:
            return w.next_image
    w.close()
    return w.next_image


def _labels(path: Path, s: dict) -> np.ndarray:
    """Write an images.json (class of image i: i mod classes); the label of each image."""
    n_img = len(s["rows_per_image"])
    labels = np.arange(n_img) % s["classes"]
    table = {"items": [], "classes": [f"c{c}" for c in range(s["classes"])], "labels": labels.tolist()}
    (path / "images.json").write_text(json.dumps(table))
    return labels


def _stored(s: dict) -> torch.Tensor:
    """The rows as the store holds them: rounded to the storage dtype, read back as float32."""
    return s["x"].to(getattr(torch, s["dtype"])).float()


def _check(path: Path, s: dict) -> ActivationStore:
    labels = _labels(path, s)
    store = ActivationStore.open(path)
    n = len(s["x"])
    want = _stored(s)
    assert store.complete and len(store) == n and store.d == s["d"]
    assert torch.equal(store[:], want)
    img = np.repeat(np.arange(len(s["rows_per_image"])), s["rows_per_image"])
    np.testing.assert_array_equal(store.image_index, img)
    np.testing.assert_array_equal(store.token_index, s["tokens"])
    np.testing.assert_array_equal(store.labels, labels[img])
    if n:
        ids = np.array([n - 1, 0, n // 2, n // 2])
        assert torch.equal(store[ids], want[ids]) and torch.equal(store[-1], want[-1])
    assert torch.equal(torch.cat([r for _, r in store.iter_sequential(3)] or [torch.zeros(0, s["d"])]), want)
    if s["sparse"]:
        indptr, indices, values = store.csr()
        nz = want != 0
        assert indptr.tolist() == [0] + nz.sum(1).cumsum(0).tolist()
        r, c = nz.nonzero(as_tuple=True)
        np.testing.assert_array_equal(indices, c.numpy())
        np.testing.assert_array_equal(values, want[r, c].numpy())
    return store


# found by the search: consecutive sparse batches without rows (indptr offset read from an empty piece)
NO_ROWS = {"sparse": True, "dtype": "float32", "d": 1, "rows_per_shard": 1, "images_per_batch": 1}
NO_ROWS |= {
    "rows_per_image": [0, 0, 0],
    "x": torch.zeros(0, 1),
    "tokens": np.zeros(0, np.int64),
    "classes": 1,
}


@given(stores())
@example(NO_ROWS)
@example(NO_ROWS | {"rows_per_image": [0, 0, 2], "x": torch.tensor([[0.0], [1.5]]), "tokens": np.arange(2)})
def test_what_is_written_is_read_back_in_order(s: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp) / "s", s)
        _check(Path(tmp) / "s", s)


@given(stores(), st.data())
def test_a_resumed_run_writes_the_same_store_as_one_pass(s: dict, data: st.DataObject) -> None:
    """Killed after the batch of image `cut` (rows buffered since the last shard are lost), resumed."""
    cut = data.draw(st.integers(0, len(s["rows_per_image"]) - 1))
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp) / "one", Path(tmp) / "two"
        _write(one, s)
        committed = _write(two, s, die_at=cut)  # no close: the process "dies" here
        assert _open_writer(two, s).next_image == committed
        _write(two, s)
        a, b = _check(one, s), _check(two, s)
        # the same shards (rows, images, checksums): the resumed run cut them where one pass did
        assert [(m["rows"], m["images"], m["sha256"]) for m in a.manifests[0]["shards"]] == [
            (m["rows"], m["images"], m["sha256"]) for m in b.manifests[0]["shards"]
        ]
        assert a.fingerprint == b.fingerprint
