"""Steering: SAE latent edits spliced into any model at a hook point, and the MLLM steering
experiment of Pach et al. (clamp a vision-encoder latent of LLaVA, read what it says).

```python
from vsae.steer import LatentEdit, intervene
with intervene(lm, "resid.22", sae, [LatentEdit(latent=7, op="clamp", value=100.0)]):
    ...
```
See docs/steer.md.

Names are imported on first use, so that `vsae.steer.steer_config` (the steering commands' options)
loads no torch. The splice lives in `vsae.steer.intervention`: a submodule named like the function
`intervene` would replace the function on this package once imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

if TYPE_CHECKING:
    from vsae.steer.edits import OPS, LatentEdit, apply_edits
    from vsae.steer.intervention import Intervention, intervene, splice
    from vsae.steer.score import SteeringScore, steering_score

_WHERE = {
    "OPS": "vsae.steer.steer_config",
    "LatentEdit": "vsae.steer.edits",
    "apply_edits": "vsae.steer.edits",
    "Intervention": "vsae.steer.intervention",
    "intervene": "vsae.steer.intervention",
    "splice": "vsae.steer.intervention",
    "SteeringScore": "vsae.steer.score",
    "steering_score": "vsae.steer.score",
}

__all__ = [
    "OPS",
    "Intervention",
    "LatentEdit",
    "SteeringScore",
    "apply_edits",
    "intervene",
    "splice",
    "steering_score",
]

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
