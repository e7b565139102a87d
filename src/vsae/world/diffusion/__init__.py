"""The shapes world's tiny text-to-image model (Olson et al.'s diffusion half, on the embedded
default): a diffusers UNet conditioned on the world CLIP's text encoder, its training
(`train`), the similarity-encoder judge of generated images (`judge`), the quality evaluation
(`evaluate`), the text-encoder SAE steering goes through (`text_sae`) and the asset build
(`build`, `vsae world build --only diffusion`). See docs/diffusion.md.
"""

from __future__ import annotations

from pathlib import Path


def default_out_dir() -> Path:
    """Where the shipped assets live (``src/vsae/world/assets/diffusion``)."""
    from vsae.world.assets import ASSETS_DIR

    return ASSETS_DIR / "diffusion"


def shipped_diffusion_dir() -> Path:
    """The shipped pipeline directory (``unet/ scheduler/ text_encoder/ tokenizer/``)."""
    from vsae.errors import VsaeError

    d = default_out_dir()
    if not (d / "unet" / "config.json").is_file():
        raise VsaeError(
            f"the shipped tiny diffusion model is missing from {d}; run `vsae world build --only diffusion`"
        )
    return d


def shipped_text_sae_dir() -> Path:
    """The shipped text-encoder SAE of the tiny diffusion model."""
    from vsae.errors import VsaeError

    d = default_out_dir() / "text_sae"
    if not (d / "config.json").is_file():
        raise VsaeError(
            f"the shipped text-encoder SAE is missing from {d}; run `vsae world build --only diffusion`"
        )
    return d
