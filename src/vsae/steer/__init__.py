"""Steering: SAE latent edits spliced into any model at a hook point, and the MLLM steering
experiment of Pach et al. (clamp a vision-encoder latent of LLaVA, read what it says).

```python
from vsae.steer import LatentEdit, intervene
with intervene(lm, "resid.22", sae, [LatentEdit(latent=7, op="clamp", value=100.0)]):
    ...
```
See docs/steer.md.
"""

from vsae.steer.edits import OPS, LatentEdit, apply_edits
from vsae.steer.intervene import Intervention, intervene, splice
from vsae.steer.score import SteeringScore, steering_score

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
