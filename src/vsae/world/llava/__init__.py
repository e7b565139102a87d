"""The shapes world's tiny LLaVA: world CLIP vision tower + projector + small Llama, a plain
`LlavaForConditionalGeneration` with a `LlavaProcessor`, driven like ``llava-hf/llava-1.5-7b-hf``.

```python
model, processor = vsae.world.llava.load_llava(vsae.world.llava.shipped_llava_dir())
vsae.world.llava.train_llava(out_dir, clip_dir)          # build it (frozen vision tower)
```
"""

from __future__ import annotations

from pathlib import Path

from vsae.errors import VsaeError
from vsae.world.llava.answer_accuracy import answer_accuracy, load_llava
from vsae.world.llava.llava_model import LlavaArch, build_llava
from vsae.world.llava.llava_train import LlavaTrainConfig, train_llava
from vsae.world.llava.questions import QUESTIONS, STEERING_QUESTION, answer

ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "llava"


def shipped_llava_dir() -> Path:
    """The tiny LLaVA shipped with the package (VsaeError if it was not built)."""
    if not (ASSET_DIR / "config.json").is_file():
        raise VsaeError(f"the tiny LLaVA is not built at {ASSET_DIR}; run `vsae world build --only llava`")
    return ASSET_DIR


def shipped_steering_sae_dir() -> Path:
    """The SAE the shipped tiny LLaVA is steered with (random:2 tokens of the layer it reads)."""
    d = shipped_llava_dir() / "steering_sae"
    if not (d / "config.json").is_file():
        raise VsaeError(
            f"the tiny LLaVA's steering SAE is missing from {d}; run `vsae world build --only llava`"
        )
    return d


__all__ = [
    "ASSET_DIR",
    "QUESTIONS",
    "STEERING_QUESTION",
    "LlavaArch",
    "LlavaTrainConfig",
    "answer",
    "answer_accuracy",
    "build_llava",
    "load_llava",
    "shipped_llava_dir",
    "shipped_steering_sae_dir",
    "train_llava",
]
