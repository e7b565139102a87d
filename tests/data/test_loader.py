"""Batches on a fixed grid, in order, decoded in workers, with skipped images reported."""

import numpy as np
import torch

from vsae.data import folder_source, grid_batches, iter_batches
from vsae.data.fake_images import bad_files, noise


def test_grid_batches():
    assert grid_batches(0, 7, 3, 0) == [[0, 1, 2], [3, 4, 5], [6]]
    # resuming at 4 keeps the later batches of an uninterrupted run
    assert grid_batches(4, 7, 3, 0) == [[4, 5], [6]]
    assert grid_batches(12, 17, 4, 10) == [[12, 13], [14, 15, 16]]
    assert grid_batches(5, 5, 4, 0) == []


def _prep(images):
    return {
        "pixel_values": torch.stack(
            [torch.from_numpy(np.asarray(im, np.float32)).permute(2, 0, 1) for im in images]
        )
    }


def test_workers_preserve_order_and_report_skips(tmp_path):
    cls = tmp_path / "c"
    cls.mkdir()
    for i in range(9):
        noise(i, (8, 8)).save(cls / f"{i:02d}.png")
    reasons = bad_files(cls)
    src = folder_source(tmp_path)
    assert len(src) == 13
    serial = list(iter_batches(src, _prep, 0, 13, 4, num_workers=0))
    par = list(iter_batches(src, _prep, 0, 13, 4, num_workers=2))
    for a, b in zip(serial, par, strict=True):
        assert list(a.ids) == list(b.ids) and a.end == b.end and a.skipped == b.skipped
        if a.inputs is not None:
            assert torch.equal(a.inputs["pixel_values"], b.inputs["pixel_values"])
    ids = [i for b in par for i in b.ids]
    skipped = {src.items[i].split("/")[-1]: r for b in par for i, _, r in b.skipped}
    assert ids == sorted(ids) and len(ids) == 9 and set(skipped) == set(reasons)
    assert all(skipped[n].startswith(r) for n, r in reasons.items())
    assert [b.end for b in par] == [4, 8, 12, 13]
    first = src.items.index(str(cls / "00.png"))
    got = par[first // 4].inputs["pixel_values"][list(par[first // 4].ids).index(first)]
    assert torch.equal(got, _prep([noise(0, (8, 8))])["pixel_values"][0])
