"""``--model python:package.module:factory`` (or ``python:path/to/file.py:factory``): calls
``factory()``, which returns a `LoadedModel` (e.g. from `vsae.models.from_module`), or
``(module, preprocess)``, or ``(module, preprocess, from_module_kwargs)`` such as
``(net, prep, {"blocks": "blocks", "has_cls": True})``. ``preprocess`` is what `from_module`
documents: a list of PIL images -> a batch tensor or a dict of tensors. The package is imported
from the current directory or ``PYTHONPATH``; the file form puts the file's folder first on
``sys.path`` (so it imports its siblings). Any error while importing or calling is one line.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from vsae.errors import VsaeError
from vsae.models.family_registry import Family, LoadRequest, register_family
from vsae.models.loaded import LoadedModel
from vsae.models.module import from_module, placed

PYTHON_FORM = "python:package.module:factory (or python:path/to/file.py:factory)"


def _one_line(e: BaseException) -> str:
    """``Type: first line of the message`` of an exception raised by the user's code."""
    msg = (str(e).splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _missing_dependency(e: ModuleNotFoundError, module: str) -> bool:
    """Whether ``e`` is about something the module imports, not the module (or its package) itself."""
    missing = e.name or ""
    return bool(missing) and not (module == missing or module.startswith(missing + "."))


def _import(module: str) -> ModuleType:
    """Import the factory's module; any error while importing it is one line (a VsaeError)."""
    if module.endswith(".py"):
        path = Path(module).expanduser().resolve()
        if not path.is_file():
            raise VsaeError(f"python file {path} does not exist; give {PYTHON_FORM}")
        spec = importlib.util.spec_from_file_location(f"vsae_factory_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise VsaeError(f"cannot import {path} as Python; give {PYTHON_FORM}")
        if str(path.parent) not in sys.path:  # its siblings import as they do when it runs as a script
            sys.path.insert(0, str(path.parent))
        mod = importlib.util.module_from_spec(spec)
        with _import_errors(str(path), str(path)):
            spec.loader.exec_module(mod)
        return mod
    if os.getcwd() not in sys.path:  # `vsae` as a console script does not import from the cwd
        sys.path.append(os.getcwd())
    with _import_errors(f"module {module!r}", repr(module), module):
        mod = importlib.import_module(module)
    return mod


@contextlib.contextmanager
def _import_errors(who: str, what: str, module: str | None = None) -> Iterator[None]:
    """Any error while importing `what` (its module `module`, None for the file form) as one line: a
    missing dependency names it; for the module form, a `module` that is not found itself says how to
    make it importable; anything else (a SyntaxError, anything the module raises) says what it raised."""
    try:
        yield
    except VsaeError:
        raise
    except ModuleNotFoundError as e:
        if module is None or _missing_dependency(e, module):
            raise VsaeError(
                f"{who} imports {e.name!r}, which is not installed (or not on PYTHONPATH); install it"
            ) from None
        raise VsaeError(
            f"cannot import {module!r} ({e}); run from its folder or add it to PYTHONPATH ({PYTHON_FORM})"
        ) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        raise VsaeError(f"importing {what} raised {_one_line(e)}") from None


def load_python(spec: str) -> LoadedModel:
    """``python:package.module:factory`` -> the factory's model, as a LoadedModel."""
    body = spec[len("python:") :]
    module, sep, name = body.rpartition(":")
    if not sep or not module or not name.isidentifier():
        raise VsaeError(f"--model {spec!r}: expected {PYTHON_FORM}")
    mod = _import(module)
    factory = getattr(mod, name, None)
    if not callable(factory):
        raise VsaeError(f"{module} has no function {name!r}; give {PYTHON_FORM}")
    try:
        made = factory()
    except VsaeError:
        raise
    except Exception as e:  # the user's code: one line, not a traceback
        raise VsaeError(f"{spec} raised {_one_line(e)}") from None
    return _as_loaded(made, spec)


def _as_loaded(made: Any, spec: str) -> LoadedModel:
    if isinstance(made, LoadedModel):
        made.provenance = {**made.provenance, "factory": spec}
        return made
    if (
        isinstance(made, tuple)
        and len(made) in (2, 3)
        and isinstance(made[0], nn.Module)
        and callable(made[1])
    ):
        kw = made[2] if len(made) == 3 else {}
        if not isinstance(kw, dict):
            raise VsaeError(f"{spec}: the third element must be a dict of from_module options")
        kw = {"name": spec, **kw}
        try:
            lm = from_module(made[0], made[1], **kw)
        except TypeError as e:
            raise VsaeError(f"{spec}: bad from_module options ({e})") from None
        lm.provenance = {**lm.provenance, "factory": spec}
        return lm
    raise VsaeError(
        f"{spec} returned {type(made).__name__}; it must return a LoadedModel, (module, preprocess) "
        "or (module, preprocess, from_module options)"
    )


def load(req: LoadRequest) -> LoadedModel:
    """The family's loader: the factory's model on the request's device and dtype."""
    return placed(load_python(req.source), req)


register_family(Family("python", load, prefix="python"))
