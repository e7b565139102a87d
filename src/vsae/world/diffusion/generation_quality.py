"""Quality of the tiny text-to-image model: do generated images show what the prompt says?

Prompts are the canonical captions of held-out (test-split) images, whose attribute
combinations the model never saw in training; each generated image is read by the similarity
encoder's attribute heads (`vsae.world.diffusion.judge`; any `AttributeReader`), and agreement with the prompt's
attributes is reported beside the heads' accuracy on the real images of the same captions, and
the shape is read a second, model-free way (`vsae.world.diffusion.silhouette`: template matching
of the object's silhouette), which background noise does not confuse.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vsae.world.generate import WorldBatch, generate

if TYPE_CHECKING:
    from vsae.experiments.diffusion_steering.judges import AttributeReader
    from vsae.steer.diffusion_pipeline import DiffusionPipe, SamplerConfig


def heldout_prompts(n: int, seed: int = 0) -> tuple[list[str], WorldBatch]:
    """(canonical captions, WorldBatch) of ``n`` test-split images drawn with ``seed``."""
    batch = generate("test", n, seed=seed)
    return [r.caption for r in batch.records], batch


def agreement(
    pred: dict[str, np.ndarray], batch: WorldBatch, attributes: tuple[str, ...] | None = None
) -> dict[str, float]:
    """Fraction of images whose predicted attribute value equals the batch's, per attribute
    [default: every attribute predicted]."""
    return {a: float(np.mean(pred[a] == batch.labels(a))) for a in (attributes or tuple(pred))}


def silhouette_agreement(images_NHWC: np.ndarray, batch: WorldBatch) -> dict[str, float]:
    """Shape agreement of the silhouette reading with the batch's shapes, and the mean IoU of the
    best-matching template (1 = a clean silhouette of some class)."""
    from vsae.world.diffusion.silhouette import read_shapes

    pred, iou = read_shapes(images_NHWC)
    return {"shape": float(np.mean(pred == batch.labels("shape"))), "mean_iou": float(np.mean(iou))}


def generation_accuracy(
    pipe: DiffusionPipe,
    judge: AttributeReader,
    n: int = 200,
    seed: int = 0,
    sampler: SamplerConfig | None = None,
) -> dict[str, Any]:
    """Per-attribute agreement of ``n`` generated images with their held-out prompts, and the
    judge's accuracy on the real images of the same prompts (its ceiling)."""
    from vsae.steer.diffusion_pipeline import SamplerConfig, resolved_sampler
    from vsae.steer.diffusion_pipeline import generate as sample

    sampler = sampler or SamplerConfig(seed=seed)
    prompts, batch = heldout_prompts(n, seed)
    guidance, eta = resolved_sampler(pipe, sampler)
    images = sample(pipe, prompts, sampler)
    return {
        "n": n,
        "prompts": f"world:test:{n}:seed{seed} (canonical captions)",
        "sampler": {"steps": sampler.steps, "guidance": guidance, "eta": eta, "seed": sampler.seed},
        "generated": agreement(judge.predict(images), batch),
        "real": agreement(judge.predict(batch.images_NHWC), batch),
        "silhouette": {
            "generated": silhouette_agreement(images, batch),
            "real": silhouette_agreement(batch.images_NHWC, batch),
        },
    }
