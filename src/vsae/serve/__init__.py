"""`vsae serve`: a local web app to explore SAE latents and steer with them (docs/serve.md).

```python
from vsae.serve import create_app, from_demo
app = create_app(from_demo("demo-out"))      # a Starlette app; `vsae serve demo-out` runs it
```
"""

from vsae.serve.app import ServeLimits, create_app
from vsae.serve.sources import SaeSource, Served, SteerSource, from_demo, from_flags

__all__ = ["SaeSource", "ServeLimits", "Served", "SteerSource", "create_app", "from_demo", "from_flags"]
