"""vsae: sparse autoencoders for vision and vision-language models.

Pipeline: images -> model + hook point -> activation store -> SAE training ->
evaluation -> steering -> report. Each stage reads what the previous one wrote.
"""

import importlib
import importlib.util
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("vsae")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"


def __getattr__(name: str) -> Any:
    # Lazy top-level API so that `import vsae` stays cheap (no torch import). Sub-packages and
    # modules are reachable after a plain `import vsae` (`vsae.models.from_module(...)`),
    # imported on first use.
    if not name.startswith("_") and importlib.util.find_spec(f"vsae.{name}") is not None:
        return importlib.import_module(f"vsae.{name}")
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'vsae' has no attribute {name!r}")


# The public API, imported on first use: name -> module that defines it. `vsae.train` is the
# training sub-package and is also callable (`vsae.train(rows_or_store, cfgs, tcfg, out_dir)`).
_API = {
    "ActivationStore": "vsae.store",
    "SAE": "vsae.sae",
    "SAEConfig": "vsae.sae",
    "load": "vsae.sae",
    "save": "vsae.sae",
    "TrainConfig": "vsae.train",
    "VsaeError": "vsae.errors",
}
_SUBPACKAGES = [
    "data",
    "demo",
    "eval",
    "extract",
    "models",
    "report",
    "sae",
    "steer",
    "store",
    "train",
    "world",
]

__all__ = ["__version__", *_API, *_SUBPACKAGES]


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
