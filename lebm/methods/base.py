"""What the Trainer needs from a method: its optimisers' parameter groups and a step.

A method owns its estimator (losses, chains); the Trainer owns the loop, the
optimisers, checkpoints and logging, and knows nothing about Langevin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import nn


@dataclass
class OptimizerSpec:
    """One Adam optimiser over ``params`` with its settings and per-epoch LR decay."""

    params: list[nn.Parameter]
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off


@dataclass
class StepOutput:
    """Losses (one scalar per optimiser name) and scalar metrics of one training step."""

    losses: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class Method(Protocol):
    """The interface every estimator module implements.

    A method whose class sets ``uses_labels = True`` (semi-supervised ones) also receives
    ``step(..., labelled=(x_l, y_l))``: a batch of ``config.labelled_batch_size`` examples
    drawn from the labelled part of the training set each step (``None`` if none).
    """

    name: ClassVar[str]
    model: nn.Module

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """Named optimiser specs; ``losses`` returns a loss under each name."""
        ...

    def step(self, x: torch.Tensor, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        """Turn a batch into losses (not yet back-propagated) and metrics."""
        ...

    def on_divergence(self, factor: float) -> None:
        """Make the estimator more conservative after a NaN (e.g. smaller MCMC steps)."""
        ...

    def state(self) -> dict[str, Any]:
        """Extra state to checkpoint (JSON/tensor only); ``{}`` if none."""
        ...

    def load_state(self, state: dict[str, Any]) -> None:
        ...
