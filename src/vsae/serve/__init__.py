"""`vsae serve`: a local web app to explore SAE latents and steer with them (docs/serve.md).

```python
from vsae.serve import create_app, from_demo
app = create_app(from_demo("demo-out"))      # a Starlette app; `vsae serve demo-out` runs it
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

if TYPE_CHECKING:
    from vsae.serve.app import ServeLimits, create_app
    from vsae.serve.serve_config import ServeConfig
    from vsae.serve.sources import SaeSource, Served, SteerSource, from_demo, from_flags

# Imported on first use, so that `vsae serve --help` (its options come from ServeConfig) loads
# neither torch nor starlette.
_WHERE = {
    "ServeLimits": "vsae.serve.app",
    "create_app": "vsae.serve.app",
    "ServeConfig": "vsae.serve.serve_config",
    "SaeSource": "vsae.serve.sources",
    "Served": "vsae.serve.sources",
    "SteerSource": "vsae.serve.sources",
    "from_demo": "vsae.serve.sources",
    "from_flags": "vsae.serve.sources",
}

__all__ = [
    "SaeSource",
    "ServeConfig",
    "ServeLimits",
    "Served",
    "SteerSource",
    "create_app",
    "from_demo",
    "from_flags",
]


__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
