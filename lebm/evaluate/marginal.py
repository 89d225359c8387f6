"""Marginal likelihoods of a trained model: ``log Z`` of its prior and ``log p(x)``.

    log Z  = log E_{N(0, σ0² I)}[exp f(z)]                  (the tilted prior's normaliser)
    p(x)   = ∫ p̃(x, z) dz · c / Z,   p̃(x, z) = exp(f(z) − ‖z‖²/(2σ0²) + log p(x|z))

with ``c`` the likelihood's and the reference Gaussian's normalising constants. Both work
on any model with the ``LatentModel`` protocol.

``log p(x)`` is estimated per example by annealed importance sampling from a proposal fitted
to the model's own posterior chains (``method="ais"``, the default), or by plain importance
sampling from that proposal (``method="is"``). Measured on linear-Gaussian models whose
``log p(x)`` is exact (``benchmarks/ll_accuracy.py``; tested in ``tests/test_likelihood.py``),
the plain estimator is biased low by 0.5–0.8 nats in 16-D latents and its 2-SE intervals
cover the truth for only 55–63 % of examples; the default's bias is under 0.01 nats and
92–95 % of its intervals cover.
"""

from __future__ import annotations

import math

import torch

from lebm.metrics.likelihood import importance_log_likelihood, log_mean_exp
from lebm.models import LatentModel
from lebm.sampling import ais_log_normalizer, ais_log_weights, frozen

METHODS = ("ais", "is")


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


def posterior_proposal(model: LatentModel, x: torch.Tensor,
                       generator: torch.Generator | None = None, *, n_chains: int = 16,
                       inflate: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """A diagonal Gaussian ``N(mean, std²)`` per example, each ``(batch, dim)``: fitted to
    ``n_chains`` posterior chains of the model's inference (their mean; their spread ×
    ``inflate``, floored at 0.05 σ0), or ``q(z|x)`` for a model whose inference is its
    encoder."""
    b, d = x.shape[0], model.latent.dim
    with torch.no_grad():
        if model.config.inference == "encoder":  # the amortised q itself
            mean, logvar = model.encode(x)
            return mean, (0.5 * logvar).exp()
        xs = x.repeat_interleave(n_chains, 0)
        z = model.infer_latent(xs, generator)[0].view(b, n_chains, d)
        return z.mean(1), (z.std(1) * inflate).clamp_min(0.05 * model.prior.sigma0)


def log_likelihood(model: LatentModel, x: torch.Tensor,
                   generator: torch.Generator | None = None, *, method: str = "ais",
                   n_chains: int = 16, n_samples: int = 32, n_temps: int = 500,
                   log_z: tuple[float, float] | None = None, inflate: float = 1.5
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(x)`` in nats per example, with its standard error; two ``(batch,)`` tensors.

    Both methods start from ``posterior_proposal`` (``n_chains`` posterior chains, spread ×
    ``inflate``) and draw ``n_samples`` particles per example:

    * ``"ais"`` — annealed importance sampling from the proposal ``q`` to the posterior
      along ``q^{1−β} p̃(x, ·)^β`` (``n_temps`` temperatures, a MALA step each, in the
      proposal's whitened coordinates), so a proposal that fits badly is corrected by the
      annealing instead of by many more draws;
    * ``"is"`` — plain importance sampling, ``w = p̃(x, z)/q(z)``.

    ``E[w]`` is exactly ``p(x)`` either way; the standard error is the delta-method one over
    the particles (``log`` is biased low by about ``se²/2``). The prior's ``log Z`` is
    subtracted: ``log_z = (value, se)`` when already known (compute it once with
    ``prior_log_normalizer`` for many batches), else estimated here; its error is added in
    quadrature.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2, got {n_samples}")
    model.check_data(x)
    b, d = x.shape[0], model.latent.dim
    if log_z is None:
        log_z = prior_log_normalizer(model, generator)
    mean, std = posterior_proposal(model, x, generator, n_chains=n_chains, inflate=inflate)
    const = model.likelihood.log_normalizer(x) + model.prior.base_log_normalizer()
    if method == "is":
        with torch.no_grad():
            def log_joint(zs: torch.Tensor) -> torch.Tensor:  # (S, B, d) → (S, B)
                s = zs.shape[0]
                xx = x.unsqueeze(0).expand(s, *x.shape).reshape(s * b, *x.shape[1:])
                return model.log_joint(zs.reshape(s * b, d), xx).view(s, b) + const

            ll, se = importance_log_likelihood(log_joint, mean, std, n_samples, generator)
    else:
        ll, se = _ais_log_likelihood(model, x, mean, std, n_samples, n_temps, generator)
        ll = ll + const
    return ll - log_z[0], (se**2 + log_z[1] ** 2).sqrt()


def _ais_log_likelihood(model: LatentModel, x: torch.Tensor, mean: torch.Tensor,
                        std: torch.Tensor, n_samples: int, n_temps: int,
                        generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``log ∫ p̃(x, z) dz`` per example by AIS from ``N(mean, std²)``, with its standard
    error. In whitened coordinates ``z = mean + std·u`` the base is ``N(0, I)``:
    ``∫ p̃(x, z) dz = Π std · (2π)^{d/2} · E[w]``."""
    b, d = mean.shape
    xs = x.repeat_interleave(n_samples, 0)
    mu = mean.repeat_interleave(n_samples, 0)
    sd = std.repeat_interleave(n_samples, 0)

    def base(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * u.pow(2).sum(1)

    with frozen(model):  # float32 networks, gradients to u only
        def tilt(u: torch.Tensor) -> torch.Tensor:
            return model.log_joint(mu + sd * u, xs) - base(u)

        u0 = torch.randn(b * n_samples, d, generator=generator, device=mean.device)
        log_w = ais_log_weights(tilt, base, u0, n_temps=n_temps, generator=generator,
                                step_size=0.5, target_accept=0.6)
    value, se = log_mean_exp(log_w.view(b, n_samples), 1)
    offset = std.log().sum(1) + 0.5 * d * math.log(2 * math.pi)
    return value + offset, se
