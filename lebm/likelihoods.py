"""Observation models ``log p(x | z)`` given the generator output ``g(z)``."""

from __future__ import annotations

import torch


class GaussianLikelihood:
    """``x = g(z) + ε``, ``ε ~ N(0, σ² I)``:  ``log p(x|z) = −‖x − g(z)‖² / (2σ²) + const``.

    The norm is summed over every non-batch dimension (all pixels).
    """

    def __init__(self, sigma: float) -> None:
        if sigma <= 0:
            raise ValueError(f"likelihood sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def log_prob(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p(x|z)`` per example, shape ``(batch,)``."""
        return -squared_error(x, mean) / (2 * self.sigma**2)

    def log_normalizer(self, dim: int) -> float:
        """The dropped constant ``−(D/2) log(2πσ²)`` for data of dimension ``dim``."""
        return -0.5 * dim * float(torch.log(torch.tensor(2 * torch.pi * self.sigma**2)))


def squared_error(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``‖x − mean‖²`` summed over all non-batch dimensions, shape ``(batch,)``."""
    return (x - mean).flatten(1).pow(2).sum(1)
