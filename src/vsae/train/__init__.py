"""SAE training: a streaming multi-SAE loop, schedules, checkpoints, DDP."""

from vsae.train.config import TrainConfig
from vsae.train.data import TensorSource, open_source
from vsae.train.trainer import Trainer, run_name, train

__all__ = ["TensorSource", "TrainConfig", "Trainer", "open_source", "run_name", "train"]
