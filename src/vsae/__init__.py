"""vsae: sparse autoencoders for vision and vision-language models.

Pipeline: images -> model + hook point -> activation store -> SAE training ->
evaluation -> steering -> report. Each stage reads what the previous one wrote.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vsae")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+local"


def __getattr__(name: str):
    # Lazy top-level API so that `import vsae` stays cheap (no torch import).
    if name == "ActivationStore":
        from vsae.store import ActivationStore

        return ActivationStore
    raise AttributeError(f"module 'vsae' has no attribute {name!r}")


__all__ = ["ActivationStore", "__version__"]
