"""The configs of the two extraction commands, `ExtractConfig` (`vsae extract`) and
`MllmExtractConfig` (`vsae extract-mllm`), kept free of torch: their fields generate the
commands' options (:mod:`vsae.cli.from_config`), so the defaults, choices and help here are the
only ones, and `--help` loads no torch. `vsae.extract` and `vsae.extract.mllm_tokens` re-export them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vsae.data.orders import Order
from vsae.store.validate import StorageDtype

Tower = Literal["vision", "text", "language", "text_2", "text_3"]
TEXT_KINDS = ("caption", "teacher-forced")  # MllmExtractConfig.text_kinds: column text_kind = index


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract and where.

    Attributes
    ----------
    model: Hugging Face hub id or local model directory; a text-to-image pipeline (its text
        encoder); any nn.Module by python:package.module:factory (or python:file.py:factory); a timm
        model by timm:NAME (docs/extract.md; ignored when a LoadedModel is passed).
    hooks: hook points: resid.L | attn.L | mlp.L | embed | module:<path>; repeat for several
        (OUT/<hook>/ each).
    data: image folder tree, .txt/.csv image list, prompt file (text models), a Hugging Face
        dataset hf:<saved dir | data dir | hub id>[:<config>] (streamed: hf_stream:...), WebDataset
        shards wds:<path or URL, braces expanded>, or world:<split>:<n>.
    out: store directory (created, or resumed if it exists); with several hooks, one sub-store per
        hook under it.
    tokens: token selection: cls | mean | patches | all | random:K | registers.
    split: split sub-folder of the data tree (train, val ...), or split of an hf: dataset; unset
        for trees without splits.
    image_column: hf: the image column [default: the one Image feature].
    label_column: hf: the label column [default: the one ClassLabel feature, else unlabelled].
    tower: CLIP: vision|text; multimodal LLMs (LLaVA, Gemma 3 ...): vision|language; text-to-image
        pipelines: text|text_2|text_3 (SDXL, SD3, FLUX's encoders); unset: the model's default.
    batch_size: images per forward pass.
    num_workers: DataLoader workers decoding and preprocessing images (0: in this process).
    device: torch device: cpu, cuda, cuda:N or mps.
    dtype: storage dtype of the rows.
    model_dtype: compute dtype [default: float32 on cpu, the storage dtype elsewhere].
    max_images: use only N images: a seeded sample spread over the classes (seed), listed in
        images.json (with their source_index); how they were chosen is in the manifest.
    max_images_order: how max_images chooses: a class-stratified seeded sample, or the first N in
        source order.
    shard: (I, N): handle the I-th of N contiguous blocks (wds: / hf_stream: sources: of whole
        shards); unset reads RANK/WORLD_SIZE (torchrun), else (0, 1).
    seed: seed of random:K token sampling (per image: (seed, image index)) and of max_images.
    rows_per_shard: rows per store shard file (a shard is the unit of atomic commit).
    max_pixels: images with more pixels are skipped as decompression bombs (unset: PIL's limit).
    progress: show a tqdm progress bar.
    threads: torch CPU threads [default on cpu in `vsae extract`: the CPUs this process may use
        (shared by torchrun's local processes) minus num_workers, at least 1, so that torch and the
        image decoders do not compete for cores (torch's own default ran 2x slower on 2 cores);
        elsewhere torch's].
    """

    model: str
    hooks: tuple[str, ...] = field(metadata={"flag": "--hook"})
    data: str
    out: str
    tokens: str = "cls"
    split: str | None = None
    image_column: str | None = None
    label_column: str | None = None
    tower: Tower | None = None
    batch_size: int = 64
    num_workers: int = 2
    device: str = "cpu"
    dtype: StorageDtype = "float16"
    model_dtype: StorageDtype | None = None
    max_images: int | None = None
    max_images_order: Order = "sample"
    shard: tuple[int, int] | None = None
    seed: int = 0
    rows_per_shard: int = 65536
    max_pixels: int | None = None
    progress: bool = True
    threads: int | None = None


@dataclass(frozen=True)
class MllmExtractConfig:
    """What to extract from a multimodal LLM's language model, and where.

    Attributes
    ----------
    model: hub id or local directory of a multimodal LLM with its processor (LLaVA, LLaVA-NeXT,
        Gemma 3, Idefics3 ...).
    hooks: hook of the language model: resid.L | attn.L | mlp.L | module:<path>; repeat for several
        (OUT/<hook>/ each).
    data: image folder tree or .txt/.csv image list.
    out: store directory (created, or resumed if it exists).
    split: split sub-folder of the data tree (train, val ...).
    captions: captions: .txt with line i = caption of image i of data (or .csv with a 'text'
        column) [default: the 'caption' field of DATA/attributes.json, a world export].
    question: asked with each image (the model's own chat template).
    n_images: a seeded random sample of N images (sorted by index) [default: all].
    image_tokens: image-token positions per image: all | random:K (seeded per image).
    balance: equal image and text row counts (seeded subsample of the larger modality).
    text_kinds: text rows to extract: caption (the caption fed alone) and/or teacher-forced (the
        caption as the answer to the image prompt, read with the image in context); repeat for both.
    batch_size: images (or captions) per forward pass.
    device: torch device: cpu, cuda, cuda:N or mps.
    dtype: storage dtype of the rows.
    model_dtype: compute dtype [default: float32 on cpu, the storage dtype elsewhere].
    seed: seeds the sample, random:K and balancing.
    rows_per_shard: rows per store shard file (the unit of atomic commit).
    max_pixels: images with more pixels are skipped as decompression bombs (unset: PIL's limit).
    progress: show a tqdm progress bar.
    threads: torch CPU threads [default: torch's].
    """

    model: str
    hooks: tuple[str, ...] = field(metadata={"flag": "--hook"})
    data: str
    out: str
    split: str | None = None
    captions: str | None = None
    question: str = "Describe this image."
    n_images: int | None = None
    image_tokens: str = "all"
    balance: bool = True
    text_kinds: tuple[str, ...] = field(default=("caption",), metadata={"flag": "--text-kind"})
    batch_size: int = 32
    device: str = "cpu"
    dtype: StorageDtype = "float16"
    model_dtype: StorageDtype | None = None
    seed: int = 0
    rows_per_shard: int = 65536
    max_pixels: int | None = None
    progress: bool = True
    threads: int | None = None
