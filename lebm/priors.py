"""Latent priors: unnormalised log-densities ``log p̃(z)``.

Sign convention (REFERENCE §0.1): ``f`` is the **negative energy**, and

    log p̃(z) = f(z) − ‖z‖² / (2 σ0²),      p(z) = exp(f(z)) N(z; 0, σ0² I) / Z.

The Gaussian prior is the special case ``f ≡ 0`` (the ABP baseline).
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianPrior(nn.Module):
    """``p(z) = N(0, σ0² I)``: ``log p̃(z) = −‖z‖²/(2σ0²)``. No parameters."""

    has_energy = False

    def __init__(self, n_z: int, sigma0: float = 1.0) -> None:
        super().__init__()
        self.n_z, self.sigma0 = n_z, float(sigma0)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z) = 0``, shape ``(batch,)``."""
        return z.new_zeros(z.shape[0])

    def base_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``−‖z‖²/(2σ0²)``, shape ``(batch,)``."""
        return -z.flatten(1).pow(2).sum(1) / (2 * self.sigma0**2)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p̃(z)``, shape ``(batch,)``."""
        return self.base_log_density(z)


class EBMPrior(GaussianPrior):
    """Exponentially tilted Gaussian ``p(z) ∝ exp(f(z)) N(0, σ0² I)``.

    ``energy_net`` maps ``(batch, n_z)`` to ``(batch,)`` and is the negative energy ``f``.
    """

    has_energy = True

    def __init__(self, energy_net: nn.Module, n_z: int, sigma0: float = 1.0) -> None:
        super().__init__(n_z, sigma0)
        self.energy_net = energy_net

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z)``, shape ``(batch,)``."""
        return self.energy_net(z)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``log p̃(z) = f(z) − ‖z‖²/(2σ0²)``, shape ``(batch,)``."""
        return self.neg_energy(z) + self.base_log_density(z)
