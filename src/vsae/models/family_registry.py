"""The registry of model families: one file per family registers itself here.

A family says which `--model` values it loads and how: a Hugging Face `config.model_type`
(clip, siglip, dinov2, vit, llava ...), a prefix form (``python:...``, ``timm:...``), or a
checkpoint without a root config.json that it recognises (a diffusers pipeline directory).
`vsae.models.load` asks the registry, in that order, and calls the family's `load`.

```python
from vsae.models.family_registry import Family, LoadRequest, register_family

def load_toy(req: LoadRequest) -> LoadedModel: ...
register_family(Family("toy", load_toy, prefix="toy"))   # vsae.models.load("toy:small")
```
The families are a `vsae.registry.Registry` (`FAMILIES`: a taken name, model_type or prefix is
refused; `get_family` lists the choices). A family in another package registers when its module is
imported; `vsae.models.load` imports the modules named in the entry-point group
``vsae.model_families``, so that the CLI finds them too. (The idea follows saev's
`saev.data.models` registry.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vsae.errors import VsaeError
from vsae.registry import Obj, Registry

if TYPE_CHECKING:
    import torch

    from vsae.models.loaded import LoadedModel


@dataclass(frozen=True)
class LoadRequest:
    """What `vsae.models.load` was asked for, handed to a family's `load`.

    Attributes
    ----------
    source: the `--model` value (hub id, directory, or ``prefix:rest``).
    device: where the model goes.
    dtype: the parameters' dtype.
    tower: the tower asked for (None: the family's default).
    local_only: load from local files / the Hugging Face cache only (offline).
    config: the Hugging Face config, for families chosen by `model_type` (None otherwise).
    """

    source: str
    device: str | torch.device = "cpu"
    dtype: torch.dtype | None = None
    tower: str | None = None
    local_only: bool = False
    config: Any = None

    @property
    def rest(self) -> str:
        """The part after ``prefix:`` for prefix families (the whole source otherwise)."""
        return self.source.split(":", 1)[1] if ":" in self.source else self.source


@dataclass(frozen=True)
class Layout:
    """Where the hook points of a transformer tower are, for families that share towers
    (LLaVA's vision tower is a CLIP or SigLIP tower).

    Attributes
    ----------
    family: the name recorded in `LoadedModel.family` and provenance.
    modality: "image" (pixel_values in) or "text" (input_ids + attention_mask in).
    attn: candidate names, inside a block, of the module whose output is the attention
        sub-layer's contribution to the residual stream (first that exists wins).
    mlp: the same for the MLP sub-layer.
    has_cls: whether token 0 is a CLS token.
    embed_fields: model-output fields read by the `embed` hook, first present wins
        (projected embedding before pooled output).
    default_processor: image size -> a transformers image processor, for checkpoints that
        ship none (None: the CLIP processor).
    n_prefix: tokens before the patches (None: the CLS token if any, plus the config's
        ``num_register_tokens``).
    image_inputs: the image processor's outputs the model takes (SigLIP 2 NaFlex: the padded
        patches, their mask and each image's patch grid).
    token_mask: the input marking real tokens, so that padding is never a row (None: none).
    """

    family: str
    modality: str
    attn: tuple[str, ...]
    mlp: tuple[str, ...]
    has_cls: bool
    embed_fields: tuple[str, ...]
    default_processor: Callable[[int], Any] | None = None
    n_prefix: int | None = None
    image_inputs: tuple[str, ...] = ("pixel_values",)
    token_mask: str | None = None


@dataclass(frozen=True, eq=False)
class Family:
    """One model family.

    Attributes
    ----------
    name: unique name of the registration.
    load: LoadRequest -> LoadedModel.
    model_types: Hugging Face ``config.model_type`` -> the transformers class loaded by default.
    architectures: model_type -> classes that may be named in ``config.architectures`` and
        are then loaded instead of the default.
    prefix: loads ``--model <prefix>:<rest>`` (e.g. "python", "timm"); None for none.
    claims: (source, local_only) -> whether a checkpoint without a root config.json is this
        family's (e.g. a diffusers pipeline directory); None for none.
    layout: the family's tower layout, for families that embed its towers (LLaVA).
    """

    name: str
    load: Callable[[LoadRequest], LoadedModel]
    model_types: Mapping[str, str] = field(default_factory=dict)
    architectures: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    prefix: str | None = None
    claims: Callable[[str, bool], bool] | None = None
    layout: Layout | None = None


class _FamilyRegistry(Registry[Family]):
    """`Registry` of families; a registration is refused too when another family already loads
    one of its model_types or its prefix (a source must have one family)."""

    def register(self, name: str, *, replace: bool = False) -> Callable[[Obj], Obj]:
        deco = super().register(name, replace=replace)

        def checked(family: Obj) -> Obj:
            if not isinstance(family, Family) or family.name != name:
                raise VsaeError(f"model family {name!r}: register a Family named {name!r}")
            if not replace:
                _check_free(family)
            return deco(family)

        return checked


def _check_free(family: Family) -> None:
    for other in FAMILIES.registered().values():
        if other.name == family.name:
            continue  # the registry itself refuses a taken name
        taken = set(other.model_types) & set(family.model_types)
        if taken:
            raise VsaeError(
                f"model_type {sorted(taken)[0]!r} of family {family.name!r} is already loaded by {other.name!r}"
            )
        if family.prefix and other.prefix == family.prefix:
            raise VsaeError(f"prefix {family.prefix!r} is already loaded by family {other.name!r}")


ENTRY_POINT_GROUP = "vsae.model_families"
FAMILIES: Registry[Family] = _FamilyRegistry("model family", ENTRY_POINT_GROUP)
"""The model families (`vsae.registry.Registry`): the built-in ones are imported with
`vsae.models.families`, plug-ins through the entry points ``vsae.model_families``."""


def register_family(family: Family, replace: bool = False) -> Family:
    """Register `family` under its name (``FAMILIES.register(family.name)(family)``); VsaeError if
    its name, a model_type or its prefix is taken by another family (unless `replace`)."""
    return FAMILIES.register(family.name, replace=replace)(family)


def unregister_family(name: str) -> None:
    """Remove a family (tests registering a toy family remove it afterwards)."""
    FAMILIES.unregister(name)


def families() -> list[Family]:
    """The registered families, in registration order."""
    return list(FAMILIES.registered().values())


def get_family(name: str) -> Family:
    """The family registered as `name`; VsaeError listing the registered ones otherwise."""
    return FAMILIES.get(name)


def for_prefix(source: str) -> Family | None:
    """The family whose prefix ``source`` starts with (``python:...``), or None."""
    head, sep, _ = source.partition(":")
    if not sep:
        return None
    return next((f for f in families() if f.prefix == head), None)


def for_model_type(model_type: str) -> Family:
    """The family loading Hugging Face ``model_type``; VsaeError listing the supported ones otherwise."""
    for f in families():
        if model_type in f.model_types:
            return f
    supported = sorted(t for f in families() for t in f.model_types)
    raise VsaeError(
        f"unsupported model_type {model_type!r}; supported: {', '.join(supported)} "
        "(or pass any torch.nn.Module through the Python API: vsae.models.from_module)"
    )


def for_checkpoint(source: str, local_only: bool) -> Family | None:
    """The family claiming a checkpoint that has no root config.json, or None."""
    return next((f for f in families() if f.claims is not None and f.claims(source, local_only)), None)


def load_plugins() -> None:
    """Import the modules of the ``vsae.model_families`` entry points not imported yet; each
    registers its families when imported. A module that fails to import is a one-line error."""
    FAMILIES.load_all()
