"""Training and fine-tuning of EquiformerV2 potentials."""

from .config import TrainConfig
from .loop import Trainer, train

__all__ = ["TrainConfig", "Trainer", "train"]
