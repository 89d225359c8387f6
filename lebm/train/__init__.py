"""The training loop, run folder and checkpoints (independent of any estimator), and the
reusable one-update ``Learner``."""

from lebm.train.checkpoint import latest_checkpoint, load_training_state, save_checkpoint
from lebm.train.learner import Learner
from lebm.train.trainer import Trainer

__all__ = ["Learner", "Trainer", "latest_checkpoint", "load_training_state", "save_checkpoint"]
