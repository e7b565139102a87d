"""Pach et al.'s MLLM steering experiment ("Sparse autoencoders learn monosemantic features in
vision-language models", sec. steering): clamp one SAE latent of a LLaVA's vision encoder and
score the one-word answers against what the latent stands for. `vsae steer mllm`; the demo's
steering section.

- `mllm_config.SteerConfig`: what it does (the command's options are generated from it; torch-free);
- `mllm_run.run_steering`: the runner, in named steps (`load_models`, `discover_top_images`,
  `pick_latents`, `steer_test_images`, `steer_blank_image`);
- `mllm_result.SteeringResult`: the frozen typed result; ``to_json()`` is results.json;
- `mllm_artefacts`: results.json, scores.png and the HAI strips; `mllm_report`: the report section
  and index.html (`write_steering_index`).

The generic mechanics (the splice, latent edits, asking the model, pooled latents, the score) are
`vsae.steer`'s. The embedded world's parts plug in from above: its tiny LLaVA, steering SAE and CLIP
are the command's defaults (`vsae.cli.steer`), ``world:<split>`` images an image-source entry point.
Names are imported on first use: this package loads no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vsae.lazy import lazy_attributes

if TYPE_CHECKING:
    from vsae.experiments.mllm_steering.mllm_config import SteerConfig
    from vsae.experiments.mllm_steering.mllm_result import SteeringResult
    from vsae.experiments.mllm_steering.mllm_run import run_steering

_WHERE = {
    "SteerConfig": "vsae.experiments.mllm_steering.mllm_config",
    "SteeringResult": "vsae.experiments.mllm_steering.mllm_result",
    "run_steering": "vsae.experiments.mllm_steering.mllm_run",
}

__all__ = ["SteerConfig", "SteeringResult", "run_steering"]

__getattr__, __dir__ = lazy_attributes(__name__, _WHERE)
