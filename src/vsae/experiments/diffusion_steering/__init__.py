"""Olson et al.'s diffusion steering experiment: steer a text-to-image model through SAE latents
of its text encoder, measure what changes and name each latent's attribute from images alone.

- `config`: `DiffusionSteerConfig` (torch-free; `vsae steer diffusion`'s options);
- `runner`: `run_diffusion_steering`, split into the steps prepare / generate / steer / judge /
  discover / evaluate;
- `results`: the frozen, typed result (``to_json()`` is ``results.json``);
- `scoring`: target latents, steering rates and the steering target;
- `discovery`: naming latents by the CLIP similarity rise, checked against the truth;
- `judges`: the ground-truth plug-ins (`DIFFUSION_JUDGES`, group ``vsae.diffusion_judges``;
  the shapes world registers ``world``);
- `report`: the HTML section and page.

The generic mechanics (generation with the splice, latent statistics, edits) are `vsae.steer`.
See docs/steer.md.
"""
