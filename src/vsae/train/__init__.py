"""SAE training: a streaming multi-SAE loop, schedules, checkpoints, DDP."""

import sys
import types

from vsae.train.config import TrainConfig
from vsae.train.data import TensorSource, open_source
from vsae.train.trainer import Trainer, run_name, train

__all__ = ["TensorSource", "TrainConfig", "Trainer", "open_source", "run_name", "train"]


class _CallableModule(types.ModuleType):
    """`vsae.train` is this package and also the `train` function: `vsae.train(rows, cfgs, tcfg, out)`."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
