"""`vsae demo`: the whole pipeline on the embedded shapes world (see docs/demo.md)."""

from vsae.demo.config import DemoConfig, fast_config
from vsae.demo.run import run_demo

__all__ = ["DemoConfig", "fast_config", "run_demo"]
