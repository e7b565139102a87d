"""The built-in model families, one file each; importing this package imports every module in it,
and each registers its families (`vsae.models.family_registry.register_family`).

A new built-in family is one more file here; a family elsewhere registers when its module is
imported (or through the ``vsae.model_families`` entry points): see docs/extending.md.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
