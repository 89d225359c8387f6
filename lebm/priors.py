"""Latent priors: unnormalised log-densities ``log p̃(z)``.

Sign convention (REFERENCE §0.1): ``f`` is the **negative energy**, and

    log p̃(z) = f(z) − ‖z‖² / (2 σ0²),      p(z) = exp(f(z)) N(z; 0, σ0² I) / Z.

The Gaussian prior is the special case ``f ≡ 0`` (the ABP baseline).
"""

from __future__ import annotations

import math

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


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor, sigma0: float) -> torch.Tensor:
    """``KL(N(μ_j, e^{logvar_j}) ‖ N(0, σ0²))`` for every latent dimension, shape ``(batch, n_z)``:
    ``½ ((e^{logvar} + μ²)/σ0² − 1 − logvar + log σ0²)``."""
    s0 = sigma0 * sigma0
    return 0.5 * ((logvar.exp() + mu.pow(2)) / s0 - 1 - logvar + math.log(s0))


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


class SymbolVectorPrior(EBMPrior):
    """Symbol-vector coupling (REFERENCE §2.1): ``energy_net`` outputs ``K`` logits ``f_k(z)``.

        p(y, z) ∝ exp(f_y(z)) N(z; 0, σ0² I)              (y one of K symbols)
        p(z)    ∝ exp(F(z)) N(z; 0, σ0² I),  F(z) = logsumexp_k f_k(z)
        p(y|z)  = softmax_k f_k(z)

    ``neg_energy`` is the marginal's ``F``, so every chain and loss written for ``EBMPrior``
    works unchanged on the marginal prior.
    """

    def __init__(self, energy_net: nn.Module, n_z: int, n_classes: int,
                 sigma0: float = 1.0) -> None:
        super().__init__(energy_net, n_z, sigma0)
        if n_classes < 2:
            raise ValueError(f"a symbol-vector prior needs n_classes >= 2, got {n_classes}")
        self.n_classes = n_classes

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z) = (f_1(z), …, f_K(z))``, shape ``(batch, K)``."""
        return self.energy_net(z)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``F(z) = logsumexp_k f_k(z)``, shape ``(batch,)``."""
        return torch.logsumexp(self.logits(z), dim=1)

    def class_log_density(self, z: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
        """``log p̃(z | y) = f_y(z) − ‖z‖²/(2σ0²)`` (unnormalised), shape ``(batch,)``."""
        logits = self.logits(z)
        y = torch.as_tensor(y, device=z.device).expand(z.shape[0])
        return logits.gather(1, y[:, None]).squeeze(1) + self.base_log_density(z)
