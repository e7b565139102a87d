"""Train the tiny LLaVA on shapes-world question/answer pairs (llava-1.5 stage 2 style).

The vision tower is the world CLIP's and stays frozen; the projector and the language model are
trained with next-token cross-entropy on the answer tokens only (Liu et al., "Improved
baselines with visual instruction tuning", llava-1.5). Questions are drawn from
`questions.QUESTIONS` with `QUESTION_WEIGHTS`; each image is a train-split world image.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import LlavaProcessor

from vsae.store.safe_io import atomic_write_json
from vsae.train.recipe import TrainRecipe
from vsae.world.generate import IMAGE_SIZE, generate
from vsae.world.llava.llava_model import LlavaArch, build_llava
from vsae.world.llava.questions import QUESTION_WEIGHTS, QUESTIONS, answer
from vsae.world.training import WorldTrainConfig, decay_groups, fit, pixel_values, seed_everything

IGNORE = -100  # label of tokens without loss


@dataclass(frozen=True)
class LlavaTrainConfig:
    """Training of the tiny LLaVA.

    Attributes
    ----------
    recipe: AdamW with linear warm-up and cosine decay; its seed seeds the model init, the image
        pool and the batches.
    n_images: size of the train-split pool batches are drawn from.
    arch: the language side's architecture.
    train_vision: also fine-tune the vision tower (llava-1.5 keeps it frozen; use this only when
        the CLIP's patch features do not carry what the questions ask, e.g. shape).
    vision_lr_scale: the vision tower's learning rate relative to ``lr`` when it is trained.
    """

    recipe: TrainRecipe = TrainRecipe(
        steps=1000, batch_size=64, lr=2e-3, seed=0, warmup=100, weight_decay=0.01
    )
    n_images: int = 20000
    arch: LlavaArch = field(default_factory=LlavaArch)
    train_vision: bool = False
    vision_lr_scale: float = 0.1


def prompt_ids(processor: LlavaProcessor, kind: str) -> list[int]:
    """Token ids of the chat prompt for question ``kind``, with ``<image>`` expanded exactly as
    the processor expands it at inference."""
    from vsae.steer.mllm import conversation

    text = processor.apply_chat_template(conversation(QUESTIONS[kind]), add_generation_prompt=True)
    blank = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE))
    return processor(images=[blank], text=[text], return_tensors="pt")["input_ids"][0].tolist()


class QABatcher:
    """Builds (input_ids, attention_mask, labels) batches: prompt + answer + ``</s>``, right-padded."""

    def __init__(self, processor: LlavaProcessor, records: list[dict[str, Any]]):
        self.tok = processor.tokenizer
        self.records = records
        self.kinds = list(QUESTION_WEIGHTS)
        self.p = np.array([QUESTION_WEIGHTS[k] for k in self.kinds]) / sum(QUESTION_WEIGHTS.values())
        self.prompts = {k: prompt_ids(processor, k) for k in self.kinds}
        self._answers: dict[str, list[int]] = {}

    def answer_ids(self, text: str) -> list[int]:
        if text not in self._answers:
            self._answers[text] = self.tok(text, add_special_tokens=False)["input_ids"] + [
                self.tok.eos_token_id
            ]
        return self._answers[text]

    def __call__(self, idx: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        kinds = rng.choice(len(self.kinds), size=len(idx), p=self.p)
        seqs, labels = [], []
        for i, k in zip(idx, kinds):
            kind = self.kinds[k]
            p, a = self.prompts[kind], self.answer_ids(answer(kind, self.records[i]))
            seqs.append(p + a)
            labels.append([IGNORE] * len(p) + a)
        T = max(map(len, seqs))
        pad = self.tok.pad_token_id
        ids_BT = torch.tensor([s + [pad] * (T - len(s)) for s in seqs])
        lab_BT = torch.tensor([s + [IGNORE] * (T - len(s)) for s in labels])
        mask_BT = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in seqs])
        return {"input_ids": ids_BT, "attention_mask": mask_BT, "labels": lab_BT}


def train_llava(
    out_dir: str | Path,
    clip_dir: str | Path | None,
    cfg: LlavaTrainConfig = LlavaTrainConfig(),
    progress: bool = True,
    eval_images: int = 200,
) -> dict:
    """Train the tiny LLaVA and ``save_pretrained`` model + processor to ``out_dir``.

    ``clip_dir``: the world CLIP (its vision tower is used frozen); None = a random tower (tests).
    Returns a summary (config, final loss, accuracy per question on ``eval_images`` test images,
    seconds), also written to ``vsae_world_build.json``.
    """
    t0, c0 = time.time(), time.process_time()
    gen = seed_everything(cfg.recipe.seed)
    rng = np.random.default_rng(cfg.recipe.seed)
    model, processor = build_llava(clip_dir, cfg.arch, seed=cfg.recipe.seed)
    vision = model.model.vision_tower
    vision.requires_grad_(cfg.train_vision)
    vision_ids = {id(p) for p in vision.parameters()}
    groups = decay_groups(
        (p for p in model.parameters() if p.requires_grad and id(p) not in vision_ids),
        cfg.recipe.weight_decay,
    ) + decay_groups(
        (p for p in vision.parameters() if p.requires_grad), cfg.recipe.weight_decay, cfg.vision_lr_scale
    )
    pool = generate("train", cfg.n_images, seed=cfg.recipe.seed)
    batcher = QABatcher(processor, [r.to_dict() for r in pool.records])
    pix_all = pixel_values(pool.images_NHWC)
    model.train()
    if not cfg.train_vision:
        vision.eval()

    def batches() -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
        while True:
            idx = torch.randint(0, len(pool), (cfg.recipe.batch_size,), generator=gen).numpy()
            yield idx, batcher(idx, rng)

    def loss_fn(step: int, batch: tuple[np.ndarray, dict[str, torch.Tensor]]) -> torch.Tensor:
        idx, qa = batch
        return model(pixel_values=pix_all[idx], **qa).loss

    res = fit(
        groups,
        batches(),
        loss_fn,
        WorldTrainConfig(cfg.recipe, log_every=25, desc="tiny LLaVA"),
        progress=progress,
    )
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    from vsae.world.llava.answer_accuracy import answer_accuracy

    acc = answer_accuracy(out, n=eval_images) if eval_images else {}
    summary = {
        "config": asdict(cfg),
        "clip_dir": str(clip_dir) if clip_dir is not None else None,
        "final_loss": res.mean_loss(50),
        "test_accuracy": acc,
        "seconds": round(time.time() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "torch_threads": torch.get_num_threads(),
    }
    atomic_write_json(out / "vsae_world_build.json", summary, indent=2)
    return summary
