"""`StreamConfig`: training straight from a model (`vsae train --model ... --data ...`), torch-free
(its fields generate the options, so `vsae train --help` loads no torch). Used by
`vsae.train.stream.ModelSource`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vsae.data.orders import Order
from vsae.extract.settings import Tower
from vsae.store.validate import StorageDtype


@dataclass(frozen=True)
class StreamConfig:
    """Where the activations come from when training without a store.

    Attributes
    ----------
    model: model to run, as `vsae extract --model` (hub id, directory, python:..., timm:...).
    hook: the hook point: resid.L | attn.L | mlp.L | embed | module:<path>.
    data: images, as `vsae extract --data`: folder tree, .txt/.csv list, hf:<dataset>, wds:<shards>
        or world:<split>:<n>.
    tokens: token selection: cls | mean | patches | all | random:K.
    split: split sub-folder of the data tree, or split of an hf: dataset.
    image_column: hf: the image column [default: the one Image feature].
    label_column: hf: the label column [default: the one ClassLabel feature].
    tower: CLIP: vision|text; LLaVA: vision|language; unset: the model's default.
    max_images: use only a seeded sample of N images spread over the classes (--seed).
    max_images_order: how max_images chooses: a class-stratified seeded sample, or the first N.
    images_per_batch: images per forward pass of the model.
    num_workers: DataLoader workers decoding and preprocessing images (0: in this process).
    buffer_rows: shuffle buffer in rows: each refill runs the model on the next images of the
        epoch's seeded image order until it holds at least this many rows (or the epoch ends),
        shuffles them with a generator seeded by (seed, refill) and serves them as training
        batches; the rows left over (fewer than one batch) are dropped. Larger mixes more images
        per batch (memory: buffer_rows x d x 4 bytes).
    model_dtype: compute dtype of the model.
    max_pixels: images with more pixels are skipped as decompression bombs (unset: PIL's limit).
    """

    model: str
    hook: str = field(metadata={"flag": "--hook"})
    data: str
    tokens: str = "cls"
    split: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    tower: Tower | None = None
    max_images: int | None = None
    max_images_order: Order = "sample"
    images_per_batch: int = 64
    num_workers: int = 2
    buffer_rows: int = 65536
    model_dtype: StorageDtype = "float32"
    max_pixels: int | None = None
