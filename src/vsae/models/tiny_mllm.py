"""Tiny random-weight multimodal LLMs of every model type in `vsae.models.families.mllm`, saved with
`save_pretrained` (model, image processor, tokenizer and, where transformers can build it without
torchvision, the processor with a chat template) for tests. Vision tower: hidden 32, 2 layers,
32 px, patch 8; language model: hidden 32, 2 layers, a word-level tokenizer.

```python
from vsae.models.tiny_mllm import build_tiny_mllm
path = build_tiny_mllm("gemma3", tmp_path / "m")
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vsae.models.tiny_models import HIDDEN, IMAGE, LAYERS, PATCH, WORDS, _vision_kwargs, save_tiny

# model types whose processor (chat template, image-token expansion) is saved: extract-mllm and
# steer mllm run on these; the others' processors need torchvision (video processors).
WITH_PROCESSOR = ("llava_next", "gemma3", "idefics3")
MLLM_KINDS = WITH_PROCESSOR + ("llava_onevision", "smolvlm", "internvl")
CHAT_WORDS = ["what", "is", "shown", "in", "this", "image", "?", "use", "exactly", "one", "word", "!"]
# A chat template of the usual form: role, the image placeholder where the image is, the text.
_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}:{% for c in m['content'] %}{% if c['type'] == 'image' %}"
    "{{ 'IMG' }}{% else %} {{ c['text'] }}{% endif %}{% endfor %} {% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
GRID = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]  # any-resolution tile grids


def chat_template(image_placeholder: str) -> str:
    """The tiny chat template with the model type's image placeholder."""
    return _TEMPLATE.replace("IMG", image_placeholder)


def _tokenizer(special: list[str], extra: dict[str, str], placeholder: str) -> Any:
    """A word-level fast tokenizer: [PAD]=0, [UNK]=1, <bos>=2, <eos>=3, words, then `special`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "<bos>": 2, "<eos>": 3}
    for w in WORDS + CHAT_WORDS + ["user", "assistant", ":"] + special:
        vocab.setdefault(w, len(vocab))
    t = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    t.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special])
    return PreTrainedTokenizerFast(
        tokenizer_object=t,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="<bos>",
        eos_token="<eos>",
        extra_special_tokens=extra,
        chat_template=chat_template(placeholder),
        padding_side="left",
    )


def _text(cls: Any, vocab: int, **kw: Any) -> Any:
    return cls(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=vocab,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        **kw,
    )


# Each builder returns the model and what is saved beside it: the processor where it is saved,
# else the image processor and the tokenizer.
_Built = tuple[Any, tuple[Any, ...]]


def _llava(kind: str) -> _Built:
    """LLaVA-NeXT (CLIP + Llama, with its processor) or LLaVA-OneVision (SigLIP + Qwen2)."""
    import transformers as T

    vk = _vision_kwargs()
    tok = _tokenizer(["<image>"], {"image_token": "<image>"}, "<image>")
    common = dict(image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=GRID)
    if kind == "llava_onevision":
        cfg: Any = T.LlavaOnevisionConfig(
            vision_config=T.SiglipVisionConfig(**vk),
            text_config=_text(T.Qwen2Config, len(tok)),
            vision_feature_layer=-1,
            vision_feature_select_strategy="full",
            **common,
        )
        ip: Any = T.LlavaOnevisionImageProcessor(
            size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=GRID
        )
        return T.LlavaOnevisionForConditionalGeneration(cfg), (ip, tok)
    cfg = T.LlavaNextConfig(
        vision_config=T.CLIPVisionConfig(**vk), text_config=_text(T.LlamaConfig, len(tok)), **common
    )
    model = T.LlavaNextForConditionalGeneration(cfg)
    ip = T.LlavaNextImageProcessor(
        size={"shortest_edge": IMAGE},
        crop_size={"height": IMAGE, "width": IMAGE},
        image_grid_pinpoints=GRID,
    )
    proc = T.LlavaNextProcessor(
        image_processor=ip,
        tokenizer=tok,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        chat_template=chat_template("<image>"),
        num_additional_image_tokens=1,
    )
    return model, (proc,)


def _gemma3(kind: str) -> _Built:
    """Gemma 3 (SigLIP + Gemma 3 text, 4 soft tokens per image), with its processor."""
    import transformers as T

    sp = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    tok = _tokenizer(sp, {"boi_token": sp[0], "eoi_token": sp[1], "image_token": sp[2]}, sp[0])
    text = _text(T.Gemma3TextConfig, len(tok), head_dim=8, sliding_window=16)
    ids = [tok.convert_tokens_to_ids(s) for s in sp]
    cfg = T.Gemma3Config(
        vision_config=T.SiglipVisionConfig(**_vision_kwargs()),
        text_config=text,
        mm_tokens_per_image=4,
        boi_token_index=ids[0],
        eoi_token_index=ids[1],
        image_token_index=ids[2],
    )
    model = T.Gemma3ForConditionalGeneration(cfg)
    ip = T.Gemma3ImageProcessor(size={"height": IMAGE, "width": IMAGE})
    proc = T.Gemma3Processor(
        image_processor=ip, tokenizer=tok, chat_template=chat_template(sp[0]), image_seq_length=4
    )
    return model, (proc,)


def _idefics(kind: str) -> _Built:
    """Idefics3 (with its processor) or SmolVLM: image splitting, pixel shuffle by 2."""
    import transformers as T

    sp = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    tok = _tokenizer(sp, {}, "<image>")
    vision = dict(_vision_kwargs(), image_size=IMAGE)
    smol = kind == "smolvlm"
    cfg: Any = (T.SmolVLMConfig if smol else T.Idefics3Config)(
        vision_config=(T.SmolVLMVisionConfig if smol else T.Idefics3VisionConfig)(**vision),
        text_config=_text(T.LlamaConfig, len(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    model = (T.SmolVLMForConditionalGeneration if smol else T.Idefics3ForConditionalGeneration)(cfg)
    ip = (T.SmolVLMImageProcessor if smol else T.Idefics3ImageProcessor)(
        size={"longest_edge": 2 * IMAGE}, max_image_size={"longest_edge": IMAGE}, do_image_splitting=True
    )
    if smol:
        return model, (ip, tok)
    proc = T.Idefics3Processor(
        image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=chat_template("<image>")
    )
    return model, (proc,)


def _internvl(kind: str) -> _Built:
    """InternVL (InternViT + Qwen2, pixel shuffle by 2, GOT-OCR2 image tiling)."""
    import transformers as T

    sp = ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    extra = {
        "start_image_token": sp[0],
        "end_image_token": sp[1],
        "context_image_token": sp[2],
        "video_token": sp[3],
    }
    tok = _tokenizer(sp, extra, "<image>")
    vc = T.InternVLVisionConfig(
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        image_size=[IMAGE, IMAGE],
        patch_size=[PATCH, PATCH],
    )
    cfg = T.InternVLConfig(
        vision_config=vc,
        text_config=_text(T.Qwen2Config, len(tok)),
        image_token_id=tok.convert_tokens_to_ids(sp[2]),
        downsample_ratio=0.5,
    )
    model = T.InternVLForConditionalGeneration(cfg)
    ip = T.GotOcr2ImageProcessor(size={"height": IMAGE, "width": IMAGE}, crop_to_patches=True, max_patches=4)
    return model, (ip, tok)


_BUILDERS = {
    "llava_next": _llava,
    "llava_onevision": _llava,
    "gemma3": _gemma3,
    "idefics3": _idefics,
    "smolvlm": _idefics,
    "internvl": _internvl,
}


def build_tiny_mllm(kind: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the tiny multimodal model `kind` (one of MLLM_KINDS) and save it to `out_dir`."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny multimodal kind {kind!r}; valid: {', '.join(MLLM_KINDS)}")
    torch.manual_seed(seed)
    model, with_it = _BUILDERS[kind](kind)
    with torch.no_grad():  # zero-initialised matrices (Gemma 3's projector) would hide the image
        for w in model.parameters():
            if w.ndim >= 2 and not w.any():
                w.normal_(0.0, 0.2)
    gc = model.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = 3, 0, 2
    return save_tiny(out_dir, model, *with_it)
