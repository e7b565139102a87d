"""The model-free silhouette reader of generated world images (an independent check on the
similarity-encoder judge)."""

from __future__ import annotations

import numpy as np

from vsae.world import generate


def test_reads_the_shape_of_real_images():
    from vsae.world.diffusion.silhouette import read_shapes

    b = generate("test", 300, seed=2)
    pred, iou = read_shapes(b.images_NHWC)
    assert np.mean(pred == b.labels("shape")) >= 0.97
    assert np.median(iou) > 0.9


def test_iou_against_a_direct_computation_and_no_object():
    from vsae.world.diffusion.silhouette import _templates, object_mask, read_shapes

    tpl, shape = _templates()
    img = np.full((2, 32, 32, 3), 120, np.uint8)  # grey: no object
    j = 123
    img[0][tpl[j].reshape(32, 32)] = (30, 60, 240)  # a blue object exactly on template j
    img[0, 0, 0] = (255, 0, 0)  # a speckle: not the largest blob, dropped
    pred, iou = read_shapes(img)
    assert pred[0] == shape[j] and iou[0] == 1.0
    assert pred[1] == -1 and object_mask(img)[1].sum() == 0
    # IoU of a half-covered template, by hand
    half = tpl[j].reshape(32, 32).copy()
    rows = np.where(half.any(1))[0]
    half[rows[: len(rows) // 2]] = False
    img2 = np.full((1, 32, 32, 3), 120, np.uint8)
    img2[0][half] = (30, 60, 240)
    _, iou2 = read_shapes(img2)
    assert iou2[0] >= half.sum() / tpl[j].sum() - 1e-6  # template j alone scores that
