"""The questions the tiny LLaVA answers about a shapes-world image, and their true answers.

The first one is Pach et al.'s steering question ("What is shown in this image? Use exactly
one word!"); its answer is the object's shape. The others (colour, background, count) and a
free caption make the language model read more of the image than the shape alone.
"""

from __future__ import annotations

QUESTIONS: dict[str, str] = {
    "object": "What is shown in this image? Use exactly one word!",
    "colour": "What colour is the shape? Use exactly one word!",
    "background": "What is the background? Use exactly one word!",
    "count": "How many shapes are there? Use exactly one word!",
    "caption": "Describe this image.",
}
STEERING_QUESTION = QUESTIONS["object"]
# How often each question is asked during training.
QUESTION_WEIGHTS: dict[str, float] = {
    "object": 0.4,
    "colour": 0.15,
    "background": 0.3,
    "count": 0.05,
    "caption": 0.1,
}
# The chat roles' words and punctuation the templates produce.
CHAT_WORDS: tuple[str, ...] = ("user", "assistant", ":", "?", "!", ".", ",")


def answer(kind: str, rec: dict) -> str:
    """The true answer to question ``kind`` for an image's attribute record (`ImageRecord.to_dict`)."""
    if kind == "object":
        return rec["shape"]
    if kind == "colour":
        return rec["colour"]
    if kind == "background":
        return rec["background"]
    if kind == "count":
        return "one"
    if kind == "caption":
        return rec["caption"]
    raise KeyError(kind)


def question_words() -> set[str]:
    """Every word of every question, lower-cased, punctuation split off."""
    import re

    return {w for q in QUESTIONS.values() for w in re.findall(r"\w+|[^\w\s]", q.lower())}
