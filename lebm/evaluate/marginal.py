"""Marginal likelihoods of a trained model: ``log Z`` of its prior and ``log p(x)``.

    log Z  = log E_{N(0, σ0² I)}[exp f(z)]                      (the tilted prior's normaliser)
    p(x)   = E_{z~q}[ p̃(x, z) / q(z) ] / Z                      (importance sampling)

Both work on any model with the ``LatentModel`` protocol (a prior with ``neg_energy``,
``sample_base``, ``base_log_density`` and ``base_log_normalizer``; a likelihood with
``log_normalizer``; the model's inference for the proposal).
"""

from __future__ import annotations

import torch

from lebm.metrics.likelihood import importance_log_likelihood
from lebm.models import LatentModel
from lebm.sampling import ais_log_normalizer, frozen


def prior_log_normalizer(model: LatentModel, generator: torch.Generator | None = None, *,
                         n_chains: int = 1000, n_temps: int = 200) -> tuple[float, float]:
    """``log Z = log E_{N(0,σ0²)} exp f(z)`` of the model's prior by annealed importance
    sampling (MALA moves), with its standard error; ``(0, 0)`` for a prior with ``f ≡ 0``.
    AIS follows modes that plain draws from ``N(0, σ0²)`` rarely reach."""
    prior = model.prior
    if not prior.needs_chain:
        return 0.0, 0.0
    with frozen(prior):
        return ais_log_normalizer(prior.neg_energy, prior.sample_base, prior.base_log_density,
                                  n_chains=n_chains, n_temps=n_temps, step_size=0.5 * prior.sigma0,
                                  generator=generator)


def log_likelihood(model: LatentModel, x: torch.Tensor,
                   generator: torch.Generator | None = None, *, n_chains: int = 16,
                   n_samples: int = 256, log_z: tuple[float, float] | None = None,
                   inflate: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Importance-sampling estimate of ``log p(x)`` in nats, with its standard error.

    Proposal per example: a diagonal Gaussian fitted to ``n_chains`` posterior chains
    (their mean; their spread × ``inflate``, floored at 0.05 σ0) — or, for a model whose
    inference is its encoder, ``q(z|x)`` itself — from which ``n_samples`` draws weigh
    ``p̃(x, z)/q(z)``. The prior's ``log Z`` is subtracted: ``log_z`` = ``(value, se)``
    when already known (compute it once with ``prior_log_normalizer`` for many batches),
    else estimated here; its error is added in quadrature. Unbiased for ``p(x)``; the log is
    biased low (Jensen). Returns two ``(batch,)`` tensors.
    """
    model.check_data(x)
    b, d = x.shape[0], model.latent.dim
    if log_z is None:
        log_z = prior_log_normalizer(model, generator)
    with torch.no_grad():
        if model.config.inference == "encoder":  # the amortised q itself
            mean, logvar = model.encode(x)
            std = (0.5 * logvar).exp()
        else:
            xs = x.repeat_interleave(n_chains, 0)
            z = model.infer_latent(xs, generator)[0].view(b, n_chains, d)
            mean = z.mean(1)
            std = (z.std(1) * inflate).clamp_min(0.05 * model.prior.sigma0)
        const = model.likelihood.log_normalizer(x) + model.prior.base_log_normalizer()

        def log_joint(zs: torch.Tensor) -> torch.Tensor:  # (S, B, d) → (S, B)
            s = zs.shape[0]
            xx = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
            return model.log_joint(zs.reshape(s * b, d), xx).view(s, b) + const

        ll, se = importance_log_likelihood(log_joint, mean, std, n_samples, generator)
    return ll - log_z[0], (se**2 + log_z[1] ** 2).sqrt()


__all__ = ["log_likelihood", "prior_log_normalizer"]
