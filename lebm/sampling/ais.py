"""Annealed importance sampling (Neal 2001) of a log-normaliser, built on the MALA kernel.

For a base density ``b(z)`` that can be sampled exactly and a log-tilt ``t(z)`` (for an
EBM prior ``t = f``, the negative energy, and ``b = N(0, σ0² I)``)::

    Z = E_{z~b}[exp t(z)],      p_β(z) ∝ b(z) exp(β t(z)),      β_k = (k/K)²,  k = 0..K

Chains start from exact draws of ``p_0 = b``. At each temperature ``β_k`` the log-weight
gains ``(β_k − β_{k−1}) t(z)`` and then ``z`` moves by MALA steps that leave ``p_{β_k}``
invariant, so ``E[exp(log w)] = Z`` exactly; ``log Ẑ = log mean exp(log w)`` over chains,
with its delta-method standard error. Plain Monte Carlo from ``b`` misses modes far in its
tails (a learned prior's clusters); AIS follows them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from lebm.sampling.kernels import MALA, LogDensity


def ais_log_weights(
    log_tilt: LogDensity,
    base_log_density: LogDensity,
    z0: torch.Tensor,
    *,
    n_temps: int = 200,
    n_mcmc: int = 1,
    step_size: float = 0.5,
    target_accept: float = 0.6,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """AIS log-weights of chains started at ``z0`` (exact draws of the base), shape ``(n,)``.

    Anneals ``p_β ∝ b(z) exp(β t(z))`` over ``β_k = (k/n_temps)²``: at each temperature the
    log-weight gains ``(β_k − β_{k−1}) t(z)``, then ``n_mcmc`` MALA steps move ``z`` with
    ``p_{β_k}`` invariant. ``E[exp(log w)] = ∫ b e^t / ∫ b`` for every chain, so chains may
    belong to different targets (a batch of examples, each with its own ``t``) and be
    averaged per target by the caller. The MALA step size starts at ``step_size`` and after
    every MALA step is multiplied by 1.02 when the mean acceptance probability exceeds
    ``target_accept``, else by 0.98.
    """
    if n_temps < 1:
        raise ValueError(f"need n_temps >= 1, got {n_temps}")
    if n_mcmc < 0:
        raise ValueError(f"n_mcmc must be >= 0, got {n_mcmc}")
    kernel = MALA(step_size)
    betas = torch.linspace(0, 1, n_temps + 1, dtype=torch.float64) ** 2
    z = z0.detach()
    with torch.no_grad():
        tilt = log_tilt(z)
    log_w = torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
    for k in range(1, n_temps + 1):
        beta = float(betas[k])
        log_w += float(betas[k] - betas[k - 1]) * tilt.double()

        def log_target(u: torch.Tensor, beta: float = beta) -> torch.Tensor:
            return base_log_density(u) + beta * log_tilt(u)

        if n_mcmc > 0:
            state = kernel.init(z, log_target)
            for _ in range(n_mcmc):
                state, info = kernel.step(state, log_target, generator)
                assert info.acceptance is not None  # MALA always reports it
                factor = 1.02 if float(info.acceptance.mean()) > target_accept else 0.98
                kernel = kernel.with_step_size(kernel.step_size * factor)
            z = state.z
        if k < n_temps:
            with torch.no_grad():
                tilt = log_tilt(z)
    return log_w


def ais_log_normalizer(
    log_tilt: LogDensity,
    sample_base: Callable[[int, torch.Generator | None], torch.Tensor],
    base_log_density: LogDensity,
    *,
    n_chains: int = 1000,
    n_temps: int = 200,
    n_mcmc: int = 1,
    step_size: float = 0.5,
    target_accept: float = 0.6,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """``log E_{z~base}[exp log_tilt(z)]`` by annealed importance sampling
    (``ais_log_weights`` of ``n_chains`` chains from ``sample_base(n, generator)``, exact
    ``(n, dim)`` draws of the base whose log-density up to a constant is
    ``base_log_density``). Returns ``(log Z, delta-method standard error over chains)``.
    """
    # Imported here so that importing lebm.sampling loads nothing of lebm.metrics.
    from lebm.metrics.likelihood import log_mean_exp

    if n_chains < 2:
        raise ValueError(f"need n_chains >= 2, got n_chains={n_chains}")
    if n_temps < 1:
        raise ValueError(f"need n_temps >= 1, got {n_temps}")
    z = sample_base(n_chains, generator).detach()
    if z.dim() < 2 or z.shape[0] != n_chains:
        raise ValueError(f"sample_base({n_chains}, generator) must return ({n_chains}, dim) "
                         f"draws, got shape {tuple(z.shape)}")
    log_w = ais_log_weights(log_tilt, base_log_density, z, n_temps=n_temps, n_mcmc=n_mcmc,
                            step_size=step_size, target_accept=target_accept,
                            generator=generator)
    value, se = log_mean_exp(log_w, 0)
    return float(value), float(se)
