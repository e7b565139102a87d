"""Models: loading by hub id or local directory, named hook points, capture and token selection.

```python
lm = vsae.models.load("openai/clip-vit-base-patch32")      # or a local directory
with vsae.models.capture(lm, "resid.-2") as cap:
    lm.run(lm.preprocess(images))
rows, image_idx, token_idx = vsae.models.select_tokens(cap.output, "patches", lm.has_cls, ids)
```
"""

from vsae.models.hooks import Capture, HookPoint, capture, resolve_hook
from vsae.models.loading import LoadedModel, from_module, load
from vsae.models.tokens import TokenSelection, parse_selection, select_tokens

__all__ = [
    "Capture",
    "HookPoint",
    "LoadedModel",
    "TokenSelection",
    "capture",
    "from_module",
    "load",
    "parse_selection",
    "resolve_hook",
    "select_tokens",
]
