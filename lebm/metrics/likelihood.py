"""Importance-sampling estimates of ``log p(x)``, with standard errors (annealed importance
sampling of log-normalisers is ``lebm.sampling.ais``).

    p(x) = E_{z~q}[ p(x, z) / q(z) ]   ⇒   log p̂(x) = log (1/S) Σ_s w_s,   w_s = p(x, z_s)/q(z_s)

The standard error of ``log p̂`` is the delta-method ``sd(w) / (√S · mean(w))``. Everything
is computed in log space (no overflow for weights of any magnitude).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def log_mean_exp(a: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log mean exp a, its delta-method standard error)`` along ``dim``."""
    n = a.shape[dim]
    if n < 2:
        raise ValueError(f"need at least 2 samples along dim {dim}, got {n}")
    a = a.double()
    top = a.amax(dim, keepdim=True)
    w = (a - top).exp()
    mean = w.mean(dim)
    value = mean.log() + top.squeeze(dim)
    se = w.std(dim) / (math.sqrt(n) * mean)
    return value.float(), se.float()


def importance_log_likelihood(
    log_joint: Callable[[torch.Tensor], torch.Tensor],
    mean: torch.Tensor,
    std: torch.Tensor,
    n_samples: int,
    generator: torch.Generator | None = None,
    chunk: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(x)`` per example with a diagonal Gaussian proposal ``N(mean, std²)``.

    ``log_joint`` maps ``z`` of shape ``(S, B, d)`` to the *normalised* ``log p(x_b, z)`` of
    shape ``(S, B)``; ``mean`` and ``std`` are ``(B, d)``. Draws are evaluated ``chunk`` at a
    time. Returns ``(estimate, standard error)``, each ``(B,)``.
    """
    if mean.shape != std.shape or mean.dim() != 2:
        raise ValueError(f"mean and std must both be (batch, dim), got {tuple(mean.shape)} "
                         f"and {tuple(std.shape)}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    if not bool((std > 0).all()):
        raise ValueError("proposal std must be > 0")
    d = mean.shape[1]
    log_norm = -0.5 * d * math.log(2 * math.pi) - std.log().sum(1)
    log_w = []
    for start in range(0, n_samples, chunk):
        s = min(chunk, n_samples - start)
        eps = torch.randn((s, *mean.shape), generator=generator, device=mean.device)
        z = mean + std * eps
        log_q = log_norm - 0.5 * eps.pow(2).sum(-1)
        log_w.append(log_joint(z) - log_q)
    return log_mean_exp(torch.cat(log_w), 0)

