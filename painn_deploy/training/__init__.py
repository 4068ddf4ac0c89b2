"""Training: Lightning module, atomic checkpoints, learning curves."""

from ..model.checkpoint import load_checkpoint, potential_from_record
from .config import TrainConfig
from .trainer import checkpoint_test_errors, evaluate, predict, train

__all__ = [
    "TrainConfig",
    "checkpoint_test_errors",
    "evaluate",
    "load_checkpoint",
    "potential_from_record",
    "predict",
    "train",
]
