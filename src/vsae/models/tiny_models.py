"""Tiny random-weight models of every supported family, saved with `save_pretrained` for tests.

No hub access is needed: each builder makes a config (hidden 32, 2 layers, 32 px images, patch 8),
random weights, an image processor and/or a word-level tokenizer, and saves them to a directory
that `vsae.models.load` (and transformers' `from_pretrained`) can open.

```python
from vsae.models.tiny_models import build_tiny
path = build_tiny("clip_vision_proj", tmp_path / "m")
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

HIDDEN = 32
LAYERS = 2
IMAGE = 32
PATCH = 8
WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "an",
    "image",
    "with",
    "red",
    "green",
    "blue",
    "yellow",
    "cat",
    "dog",
    "bird",
    "car",
    "tree",
    "house",
    "square",
    "circle",
    "star",
    "triangle",
    "cross",
    "big",
    "small",
    "on",
    "in",
    "and",
]

TINY_KINDS = (
    "clip_vision",
    "clip_vision_proj",
    "clip",
    "clip_text",
    "clip_text_proj",
    "siglip_vision",
    "dinov2",
    "dinov2_registers",
    "vit",
    "llava",
    "siglip2_vision",
    "siglip2",
    "dinov3",
    "aimv2_vision",
    "aimv2",
)


def _vision_kwargs() -> dict[str, Any]:
    return dict(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        image_size=IMAGE,
        patch_size=PATCH,
    )


def _text_kwargs(vocab: int) -> dict[str, Any]:
    return dict(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        vocab_size=vocab,
        max_position_embeddings=32,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )


def tiny_tokenizer() -> Any:
    """A word-level fast tokenizer: [PAD]=0, [UNK]=1, <bos>=2, <eos>=3, then WORDS; appends <eos>."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "<bos>": 2, "<eos>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 3)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="<bos>", eos_token="<eos>"
    )


def _vocab_size() -> int:
    return 4 + len(dict.fromkeys(WORDS))


def _clip_image_processor() -> Any:
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE})


def save_tiny(out_dir: str | Path, model: Any, *with_it: Any) -> Path:
    """Save a random-weight `model` (a transformers model in eval mode, or a diffusers pipeline) and
    what goes with it (tokenizer, image processor, processor; None is skipped) to `out_dir` with
    `save_pretrained` (safetensors): the one way every tiny builder writes its model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, torch.nn.Module):
        model.eval()
    model.save_pretrained(out, safe_serialization=True)
    for part in with_it:
        if part is not None:
            part.save_pretrained(out)
    return out


def build_tiny(kind: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny model `kind` (one of TINY_KINDS) with random weights and save it to `out_dir`."""
    import transformers as T

    torch.manual_seed(seed)
    proc: Any = _clip_image_processor()
    tok: Any = None
    cfg: Any
    model: Any
    vk = _vision_kwargs()
    if kind in ("clip_vision", "clip_vision_proj"):
        cfg = T.CLIPVisionConfig(**vk, projection_dim=16)
        model = (T.CLIPVisionModelWithProjection if kind.endswith("proj") else T.CLIPVisionModel)(cfg)
    elif kind == "clip":
        cfg = T.CLIPConfig(vision_config=vk, text_config=_text_kwargs(_vocab_size()), projection_dim=16)
        model, tok = T.CLIPModel(cfg), tiny_tokenizer()
    elif kind in ("clip_text", "clip_text_proj"):
        cfg = T.CLIPTextConfig(**_text_kwargs(_vocab_size()), projection_dim=16)
        model = (T.CLIPTextModelWithProjection if kind.endswith("proj") else T.CLIPTextModel)(cfg)
        proc, tok = None, tiny_tokenizer()
    elif kind == "siglip_vision":
        model = T.SiglipVisionModel(T.SiglipVisionConfig(**vk))
        proc = T.SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
    elif kind in ("siglip2_vision", "siglip2"):
        # NaFlex: at most 16 patches of 8 px; the test images' aspect ratios give different grids
        nk = {k: v for k, v in vk.items() if k != "image_size"} | {"num_patches": 16}
        if kind == "siglip2":
            cfg = T.Siglip2Config(vision_config=nk, text_config=_text_kwargs(_vocab_size()))
            model, tok = T.Siglip2Model(cfg), tiny_tokenizer()
        else:
            model = T.Siglip2VisionModel(T.Siglip2VisionConfig(**nk))
        proc = T.Siglip2ImageProcessor(patch_size=PATCH, max_num_patches=16)
    elif kind in ("aimv2_vision", "aimv2"):
        if kind == "aimv2":
            cfg = T.Aimv2Config(vision_config=vk, text_config=_text_kwargs(_vocab_size()), projection_dim=16)
            model, tok = T.Aimv2Model(cfg), tiny_tokenizer()
        else:
            model = T.Aimv2VisionModel(T.Aimv2VisionConfig(**vk))
    elif kind in ("dinov2", "dinov2_registers", "dinov3"):
        if kind == "dinov2":
            model = T.Dinov2Model(T.Dinov2Config(**vk))
        elif kind == "dinov3":  # with 2 register tokens, as the released DINOv3 ViTs have 4
            model = T.DINOv3ViTModel(T.DINOv3ViTConfig(**vk, num_register_tokens=2))
        else:
            model = T.Dinov2WithRegistersModel(T.Dinov2WithRegistersConfig(**vk, num_register_tokens=2))
        # LayerScale starts at 1.0; random values make the sub-layer test tell it apart from the MLP.
        with torch.no_grad():
            for p in model.parameters():
                if p.ndim == 1 and torch.all(p == 1.0):
                    p.uniform_(0.5, 1.5)
    elif kind == "vit":
        model = T.ViTModel(T.ViTConfig(**vk))
        proc = T.ViTImageProcessor(size={"height": IMAGE, "width": IMAGE})
    elif kind == "llava":
        text = T.LlamaConfig(
            hidden_size=HIDDEN,
            intermediate_size=2 * HIDDEN,
            num_hidden_layers=LAYERS,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=_vocab_size() + 1,
            max_position_embeddings=64,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=3,
        )
        cfg = T.LlavaConfig(
            vision_config=T.CLIPVisionConfig(**vk), text_config=text, image_token_index=_vocab_size()
        )
        model, tok = T.LlavaForConditionalGeneration(cfg), tiny_tokenizer()
    else:
        raise ValueError(f"unknown tiny model kind {kind!r}; valid: {', '.join(TINY_KINDS)}")
    return save_tiny(out_dir, model, proc, tok)


# A researcher's `python:` factory for a pretrained CNN with local weights, as docs/extract.md
# walks through it; written by `write_cnn_example` with a tiny random-weight stand-in (the layout
# of timm's EfficientNet: conv_stem, blocks, conv_head, classifier) so the docs can run it.
CNN_EXAMPLE = '''"""A pretrained CNN for `vsae --model python:mycnn.py:make`: the architecture, the local
weights next to this file (no download), and the model's own preprocessing."""
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

WEIGHTS = Path(__file__).with_name("mycnn.safetensors")
MEAN, STD = np.array([0.5, 0.5, 0.5], np.float32), np.array([0.5, 0.5, 0.5], np.float32)


class TinyEfficientNet(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.conv_stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU6())
        self.blocks = nn.Sequential(  # timm keeps its stages in an nn.Sequential
            nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6()),
            nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU6()),
        )
        self.conv_head = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU6())
        self.classifier = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.classifier(self.conv_head(self.blocks(self.conv_stem(x))).mean((2, 3)))


def preprocess(images):  # PIL images -> [B, 3, 32, 32], normalised as in training
    a = [(np.asarray(im.convert("RGB").resize((32, 32)), np.float32) / 255 - MEAN) / STD for im in images]
    return torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).contiguous()


def make():
    net = TinyEfficientNet()
    net.load_state_dict(load_file(str(WEIGHTS)))  # strict: every tensor must fit
    return net.eval(), preprocess, {"blocks": "blocks"}
'''


def write_cnn_example(folder: str | Path = ".", seed: int = 0) -> Path:
    """Write ``mycnn.py`` (`CNN_EXAMPLE`) and random ``mycnn.safetensors`` weights standing in
    for pretrained ones into ``folder``; returns the factory file."""
    import importlib.util

    from safetensors.torch import save_file

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "mycnn.py"
    path.write_text(CNN_EXAMPLE)
    spec = importlib.util.spec_from_file_location("vsae_cnn_example", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(seed)
    net = mod.TinyEfficientNet()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(d / "mycnn.safetensors"))
    return path
