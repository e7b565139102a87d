"""How a subset of N items is chosen (`vsae.data.subset.choose`, `--max-images-order`). Its own
module, free of numpy and torch, because configs that generate command-line options import it."""

from __future__ import annotations

from typing import Literal, get_args

Order = Literal["sample", "first"]  # a class-stratified seeded sample, or the first N in source order
ORDERS: tuple[str, ...] = get_args(Order)
