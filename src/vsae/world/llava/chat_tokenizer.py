"""The tiny LLaVA's word-level tokenizer and chat template, driven like ``llava-hf/llava-1.5-7b-hf``.

Word-level over the shapes world's vocabulary, the questions' words and the chat words, lower
-cased, punctuation split off. ``<image>`` is a special token that the LlavaProcessor expands
into one placeholder per image feature. The chat template is llava-1.5's
(``USER: <image>\\n<question> ASSISTANT:``).
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from vsae.world.captions import vocabulary
from vsae.world.llava.questions import CHAT_WORDS, question_words

PAD, BOS, EOS, UNK, IMAGE = "<pad>", "<s>", "</s>", "<unk>", "<image>"
SPECIAL: tuple[str, ...] = (PAD, BOS, EOS, UNK, IMAGE)

# llava-hf/llava-1.5-7b-hf's chat template (images first, then the text of each message).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def llava_words() -> list[str]:
    """The non-special vocabulary, sorted."""
    return sorted(set(vocabulary()) | question_words() | set(CHAT_WORDS))


def build_llava_tokenizer() -> PreTrainedTokenizerFast:
    """Ids 0-4 are the special tokens (pad, bos, eos, unk, image), then `llava_words`.
    Encoding prepends ``<s>`` (like Llama's tokenizer); answers end with ``</s>``."""
    vocab = {t: i for i, t in enumerate(SPECIAL)}
    for w in llava_words():
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="left",  # batched generation
        chat_template=CHAT_TEMPLATE,
    )
