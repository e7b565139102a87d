"""`vsae demo`: the whole pipeline on the embedded shapes world (see docs/demo.md)."""

from vsae.demo.demo_config import DemoConfig, fast_config  # torch-free: `vsae demo --help` reads it
from vsae.lazy import lazy_attributes

__all__ = ["DemoConfig", "fast_config", "run_demo"]


# run_demo is imported on first use: it loads torch and the whole pipeline
__getattr__, __dir__ = lazy_attributes(__name__, {"run_demo": "vsae.demo.run"})
