"""The training loop, run folder and checkpoints (independent of any estimator)."""

from lebm.train.checkpoint import latest_checkpoint, load_training_state, save_checkpoint
from lebm.train.trainer import Trainer

__all__ = ["Trainer", "latest_checkpoint", "load_training_state", "save_checkpoint"]
