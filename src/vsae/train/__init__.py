"""SAE training: a streaming multi-SAE loop, schedules, checkpoints, DDP."""

import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsae.lazy import lazy_attributes
from vsae.train.train_config import TrainConfig  # torch-free: `vsae train --help` generates options from it

if TYPE_CHECKING:
    from vsae.train.batch_sources import TensorSource, open_store_source
    from vsae.train.stream import ModelSource, StreamConfig
    from vsae.train.trainer import Trainer, run_name, train

# Imported on first use, so that `vsae.train.train_config` (and `vsae train --help`) load no torch.
_LAZY = {
    "ModelSource": "vsae.train.stream",
    "StreamConfig": "vsae.train.stream_config",
    "TensorSource": "vsae.train.batch_sources",
    "open_store_source": "vsae.train.batch_sources",
    "Trainer": "vsae.train.trainer",
    "run_name": "vsae.train.trainer",
    "train": "vsae.train.trainer",
}
__all__ = [
    "ModelSource",
    "StreamConfig",
    "TensorSource",
    "TrainConfig",
    "Trainer",
    "open_store_source",
    "run_name",
    "train",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)


class _CallableModule(types.ModuleType):
    """`vsae.train` is this package and also the `train` function: `vsae.train(rows, cfgs, tcfg, out)`."""

    def __call__(self, *args: Any, **kwargs: Any) -> list[Path]:
        from vsae.train.trainer import train

        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
