"""Array types with their shapes, for annotations (jaxtyping): `Float[Tensor, "B d"]`,
`Float[np.ndarray, "N F"]`, `Int[Array, " N"]` (`Array`: a numpy array or a torch tensor).

The dimension letters are those of the name suffixes (`x_Bd`, `z_NF`); their key is in
docs/ARCHITECTURE.md, "Shapes". The tests check these annotations at run time (jaxtyping's import
hook with beartype, tests/conftest.py): a wrong shape, dtype or type fails there. jaxtyping is a
test (dev) dependency: without it the annotations are the plain array types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from jaxtyping import Bool, Float, Float32, Float64, Int, Int32, Int64, Shaped
else:
    try:
        from jaxtyping import Bool, Float, Float32, Float64, Int, Int32, Int64, Shaped
    except ImportError:  # the annotations stay plain types

        class _Plain:
            def __class_getitem__(cls, item: tuple[Any, str]) -> Any:
                return item[0]

        Bool = Float = Float32 = Float64 = Int = Int32 = Int64 = Shaped = _Plain

Tensor = torch.Tensor
Array = np.ndarray | torch.Tensor  # either: functions that take numpy or torch

__all__ = ["Array", "Bool", "Float", "Float32", "Float64", "Int", "Int32", "Int64", "Shaped", "Tensor"]
