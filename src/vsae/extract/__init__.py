"""Extraction: a model's activations at hook points -> activation stores.

- `vsae.extract.images`: the extraction pipeline of `vsae extract` (images or prompts -> model +
  hook points -> token selection -> one store per hook);
- `vsae.extract.mllm_tokens`: `vsae extract-mllm`, a multimodal LLM's language model at image and
  caption tokens -> one store with a modality column;
- `vsae.extract.settings`: `ExtractConfig`, `MllmExtractConfig` (torch-free: the two commands' options).

Names are imported lazily (importing the package loads no torch).

```python
from vsae.extract import ExtractConfig, extract
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

_IMAGES = "vsae.extract.images"
_MLLM = "vsae.extract.mllm_tokens"
_WHERE = {
    "ExtractConfig": "vsae.extract.settings",
    "MllmExtractConfig": "vsae.extract.settings",
    "Tower": "vsae.extract.settings",
    "HookStore": _IMAGES,
    "Prepared": _IMAGES,
    "block_range": _IMAGES,
    "check_numbers": _IMAGES,
    "commit": _IMAGES,
    "extract": _IMAGES,
    "feed": _IMAGES,
    "hook_dirname": _IMAGES,
    "parse_shard": _IMAGES,
    "prepare": _IMAGES,
    "probe_hooks": _IMAGES,
    "shard_from_env": _IMAGES,
    "extract_mllm": _MLLM,
}

__all__ = [
    "ExtractConfig",
    "HookStore",
    "MllmExtractConfig",
    "Prepared",
    "Tower",
    "block_range",
    "check_numbers",
    "commit",
    "extract",
    "extract_mllm",
    "feed",
    "hook_dirname",
    "parse_shard",
    "prepare",
    "probe_hooks",
    "shard_from_env",
]

if TYPE_CHECKING:
    from vsae.extract.images import (
        HookStore,
        Prepared,
        block_range,
        check_numbers,
        commit,
        extract,
        feed,
        hook_dirname,
        parse_shard,
        prepare,
        probe_hooks,
        shard_from_env,
    )
    from vsae.extract.mllm_tokens import extract_mllm
    from vsae.extract.settings import ExtractConfig, MllmExtractConfig, Tower

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
