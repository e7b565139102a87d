"""Hook points: a resolved hook (the module and how to read its output) and the early stop.

The bottom of `vsae.models`: `loaded` resolves hook names to `HookPoint`s and `hooks`
captures them; neither is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vsae.errors import VsaeError


class StopForward(Exception):
    """Raised inside a hook to end the forward pass once all requested activations are captured."""


@dataclass(frozen=True)
class HookPoint:
    """A resolved hook: canonical name, the module hooked and how to read a tensor from its output.

    `fields` names model-output attributes to read (first present wins); empty means "the first
    tensor of the output" (modules returning tuples give their first element).
    """

    name: str
    module: nn.Module
    fields: tuple[str, ...] = ()

    def read(self, output: Any) -> torch.Tensor:
        """The captured tensor from a module's forward output."""
        for f in self.fields:
            v = getattr(output, f, None)
            if v is not None:
                return v
        if self.fields:
            raise VsaeError(f"hook {self.name}: the model output has none of {list(self.fields)}")
        return first_tensor(output)

    def write(self, new: torch.Tensor) -> torch.Tensor:
        """The module's tensor for ``new``, a value in `read`'s layout (steering writes it back);
        the identity unless a family's point reshapes what it reads."""
        return new


def first_tensor(output: Any) -> torch.Tensor:
    """The tensor of a module output: itself, or the first element of a tuple / ModelOutput."""
    if torch.is_tensor(output):
        return output
    if isinstance(output, dict):  # transformers ModelOutput is an OrderedDict
        output = list(output.values())
    if isinstance(output, list | tuple) and output and torch.is_tensor(output[0]):
        return output[0]
    raise VsaeError(f"hooked module returned {type(output).__name__}, not a tensor; hook another module")
