"""Models: loading by hub id or local directory, named hook points, capture and token selection.

```python
lm = vsae.models.load("openai/clip-vit-base-patch32")      # or a local directory
with vsae.models.capture(lm, "resid.-2") as cap:
    lm.run(lm.preprocess(images))
rows, image_idx, token_idx = vsae.models.select_tokens(cap.output, "patches", lm.has_cls, ids)
```
A model family is one file that registers itself (`vsae.models.family_registry`, built-ins in
`vsae.models.families`).
"""

from vsae.models.family_registry import Family, Layout, LoadRequest, register_family
from vsae.models.hooks import Capture, capture, resolve_hook
from vsae.models.loaded import LoadedModel
from vsae.models.loading import load
from vsae.models.module import from_module
from vsae.models.points import HookPoint
from vsae.models.tokens import TokenSelection, parse_selection, select_tokens

__all__ = [
    "Capture",
    "Family",
    "HookPoint",
    "Layout",
    "LoadRequest",
    "LoadedModel",
    "TokenSelection",
    "capture",
    "from_module",
    "load",
    "parse_selection",
    "register_family",
    "resolve_hook",
    "select_tokens",
]
