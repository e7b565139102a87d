"""Shipped weights of the world models (written by `vsae world build`)."""

from pathlib import Path

from vsae.errors import VsaeError

ASSETS_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    d = ASSETS_DIR / name
    if not (d / "config.json").is_file():
        raise VsaeError(f"the shipped world model {name!r} is missing from {d}; run `vsae world build`")
    return d
