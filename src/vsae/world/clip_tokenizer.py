"""A word-level tokenizer for the shapes world's vocabulary, as a transformers tokenizer.

Built with the `tokenizers` library (WordLevel model, whitespace pre-tokenizer, lower-casing)
and wrapped in `PreTrainedTokenizerFast`, so `save_pretrained` writes a tokenizer that
`AutoTokenizer.from_pretrained(dir)` (and `AutoProcessor`) load like any other.
Each sequence is ``<|startoftext|> words <|endoftext|>``; CLIP pools the text at the first
``<|endoftext|>`` (its `eos_token_id`, set in the model config).
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from vsae.world.captions import vocabulary

PAD, BOS, UNK, EOS = "[PAD]", "<|startoftext|>", "[UNK]", "<|endoftext|>"
SPECIAL: tuple[str, ...] = (PAD, BOS, UNK, EOS)  # ids 0..3; EOS is deliberately not id 2
MAX_LENGTH = 24  # tokens, including BOS and EOS; the longest caption has 18


def build_tokenizer() -> PreTrainedTokenizerFast:
    """The world's tokenizer: ids 0-3 special tokens, then the sorted vocabulary."""
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for w in vocabulary():
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=MAX_LENGTH,
        padding_side="right",
    )
