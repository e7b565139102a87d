"""`vsae demo`: the whole pipeline on the embedded shapes world (see docs/demo.md)."""

from typing import Any

from vsae.demo.config import DemoConfig, fast_config  # torch-free: `vsae demo --help` reads it

__all__ = ["DemoConfig", "fast_config", "run_demo"]


def __getattr__(name: str) -> Any:
    if name == "run_demo":  # imported on first use: it loads torch and the whole pipeline
        from vsae.demo.run import run_demo

        return run_demo
    raise AttributeError(f"module 'vsae.demo' has no attribute {name!r}")
