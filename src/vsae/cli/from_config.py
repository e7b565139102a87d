"""Click options generated from a config dataclass: the dataclass is the single source of every
option's name, type, default, choices and help (in the spirit of saev's and tyro's configs).

For each field of a (frozen) dataclass:

* name: ``--field-name``, or the field's ``metadata["flag"]`` (``field(default=5.0,
  metadata={"flag": "--l1"})``), plus any ``metadata["aliases"]`` (e.g. ``("-k",)``); the
  command function receives it under the field's name;
* type: ``int``, ``float``, ``str``, ``bool`` (``--x/--no-x``, or a plain ``--x`` flag when the
  default is False), ``X | None`` (default None), ``Literal[...]`` (a choice),
  ``tuple[float, ...]`` / ``tuple[int, ...]`` (a comma list);
* default: the field's default (a field without one is a required option);
* help: the field's entry in the class docstring's ``Attributes`` section (``name: text``,
  continuation lines indented).

Fields named in ``lists`` take a comma list (a sweep axis: ``--k 8,16``) and arrive as a tuple.
Only the config module is imported (config modules stay free of torch).
"""

from __future__ import annotations

import dataclasses
import re
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import click

from vsae.errors import VsaeError

F = TypeVar("F", bound=Callable[..., Any])
_ATTR = re.compile(r"^(\s*)(\w+(?:,\s*\w+)*):\s*(.*)$")  # "name: text" or "a, b: text"


class LazyChoice(click.Choice):
    """A choice among names known only at run time (e.g. the registered SAE architectures):
    ``names()`` is asked each time the choices are read, not when the option is declared."""

    def __init__(self, names: Callable[[], Iterable[str]]):
        self._names = names
        super().__init__([])

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Any) -> None:
        pass


def field_docs(cls: type) -> dict[str, str]:
    """``{field: help}`` from the ``Attributes`` section of ``cls``'s docstring (one line each),
    and of its base classes' for the fields they declare; an entry ``a, b: text`` documents both
    fields."""
    out: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if base is not object and "__doc__" in base.__dict__:
            out.update(_own_field_docs(base))
    return out


def _own_field_docs(cls: type) -> dict[str, str]:
    doc = cls.__doc__ or ""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Attributes") + 1
    except StopIteration:
        return {}
    out: dict[str, list[str]] = {}
    names: list[str] = []
    indent = -1
    for line in lines[start:]:
        if not line.strip() or set(line.strip()) == {"-"}:
            continue
        m = _ATTR.match(line)
        if m and (not names or len(m.group(1)) <= indent):
            names, indent = [n.strip() for n in m.group(2).split(",")], len(m.group(1))
            text = [m.group(3)]
            for n in names:
                out[n] = text  # shared: continuation lines extend every name of the entry
        elif names and len(line) - len(line.lstrip()) > indent:
            out[names[0]].append(line.strip())
        else:
            break
    return {k: " ".join(" ".join(v).split()) for k, v in out.items()}


def flag_of(f: dataclasses.Field[Any]) -> str:
    """The command-line flag of a config field (``metadata["flag"]`` or ``--field-name``)."""
    return str(f.metadata.get("flag") or "--" + f.name.replace("_", "-"))


def _strip_none(t: Any) -> tuple[Any, bool]:
    if get_origin(t) in (Union, types.UnionType):
        args = [a for a in get_args(t) if a is not type(None)]
        if len(args) == 1 and len(args) < len(get_args(t)):
            return args[0], True
    return t, False


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _parse_list(flag: str, kind: type, text: str | tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """A comma list as a tuple of ``kind`` (ints: positive), or a one-line VsaeError."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        vals = None
    if kind is int:
        if not vals or any(not (v.is_integer() and v >= 1) for v in vals):
            raise VsaeError(f"{flag} must be a positive integer or a comma list of them, got {text!r}")
        return tuple(int(v) for v in vals)
    if vals is None:
        raise VsaeError(f"{flag} must be a number or a comma list of numbers, got {text!r}")
    return tuple(kind(v) for v in vals)


def _option(f: dataclasses.Field[Any], hint: Any, help: str, as_list: bool, extra: Mapping[str, Any]) -> Any:
    flag = flag_of(f)
    if f.default is not dataclasses.MISSING:
        default: Any = f.default
    elif f.default_factory is not dataclasses.MISSING:
        raise TypeError(f"config field {f.name} has a default_factory; exclude it from the options")
    else:
        default = None
    required = f.default is dataclasses.MISSING
    t, optional = _strip_none(hint)
    kw: dict[str, Any] = {"help": help, "required": required}
    decls = [flag, *f.metadata.get("aliases", ()), f.name]
    if get_origin(t) is tuple or as_list:
        kind = get_args(t)[0] if get_origin(t) is tuple else t
        kw["type"] = str
        if default is not None:
            kw["default"] = ",".join(_fmt(v) for v in (default if isinstance(default, tuple) else (default,)))
        kw["callback"] = lambda ctx, param, v: _parse_list(flag, kind, v)
        if as_list:
            kw["help"] = f"{help.rstrip('.')}; a comma list trains a sweep."
    elif t is bool:
        if optional or default:
            decls = [f"{flag}/--no-{flag[2:]}", f.name]
        else:
            kw["is_flag"] = True
        kw["default"] = default
    elif get_origin(t) is Literal:
        kw["type"] = click.Choice([str(a) for a in get_args(t)])
        kw["default"] = default
    elif t in (int, float, str):
        kw["type"] = t
        kw["default"] = default
    else:
        raise TypeError(f"config field {f.name}: no command-line form for type {hint!r}")
    kw["show_default"] = default is not None and not required and not kw.get("is_flag")
    if required:  # click (>= 8.3) takes an explicit default, even None, as a value given
        kw.pop("default", None)
    kw.update(extra)
    return click.option(*decls, **kw)


def config_options(
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    lists: Iterable[str] = (),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Decorator adding one click option per field of dataclass ``cls`` (see the module docstring).

    ``only`` / ``exclude`` pick the fields; ``lists`` take comma lists; ``overrides`` maps a field
    to extra ``click.option`` keywords (e.g. a ``callback`` or run-time ``type``).
    """
    hints = get_type_hints(cls)
    docs = field_docs(cls)
    keep = set(only) if only is not None else None
    skip, as_list, over = set(exclude), set(lists), dict(overrides or {})
    fields = [f for f in dataclasses.fields(cls) if (keep is None or f.name in keep) and f.name not in skip]
    missing = [f.name for f in fields if f.name not in docs]
    if missing:
        raise TypeError(f"{cls.__name__} fields {missing} have no entry in its docstring's Attributes")

    def deco(fn: F) -> F:
        for f in reversed(fields):  # click lists options in decoration order, innermost first
            opt = _option(f, hints[f.name], _sentence(docs[f.name]), f.name in as_list, over.get(f.name, {}))
            fn = opt(fn)
        return fn

    return deco


def _sentence(text: str) -> str:
    text = text.strip().replace("``", "`")
    return text[:1].upper() + text[1:] if text else text


def pick(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Remove and return the entries of ``values`` (a command's keyword arguments) that are fields
    of ``cls``; None values of fields with a non-None default are dropped (the default applies)."""
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            v = values.pop(f.name)
            if v is None and f.default is not None:
                continue
            out[f.name] = v
    return out
