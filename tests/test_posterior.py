"""Posterior (and prior) chains of the model against closed forms: linear-Gaussian posteriors
and a linearly tilted prior.

With z ~ N(0, σ0² I) and x = W z + b + ε, ε ~ N(0, σ² I), the posterior is Gaussian:
    Σ_post = (I/σ0² + WᵀW/σ²)⁻¹,     μ_post = Σ_post Wᵀ (x − b) / σ².
"""

from __future__ import annotations

import torch

from lebm.models import ChainConfig, LatentEBM, ModelConfig


def _linear_model(sigma: float, sigma0: float, steps: int, step_size: float) -> LatentEBM:
    cfg = ModelConfig(n_z=2, generator="mlp", gen_widths=(), gen_output="identity",
                      prior="gaussian", sigma=sigma, sigma0=sigma0,
                      posterior_chain=ChainConfig(n_steps=steps, step_size=step_size),
                      data_shape=(3,))
    return LatentEBM(cfg)


def test_posterior_langevin_matches_linear_gaussian_closed_form():
    torch.manual_seed(0)
    sigma, sigma0 = 0.5, 1.0
    model = _linear_model(sigma, sigma0, steps=600, step_size=0.08)
    lin = model.generator.net[0]
    W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.0]])
    b = torch.tensor([0.1, -0.2, 0.3])
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    x = torch.tensor([0.7, 0.4, -0.9])
    cov = torch.linalg.inv(torch.eye(2) / sigma0**2 + W.T @ W / sigma**2)
    mean = cov @ W.T @ (x - b) / sigma**2

    n = 4000
    z = model.infer(x.expand(n, 3).clone(), torch.Generator().manual_seed(3))
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=0.03, rtol=0)


def test_posterior_with_ebm_prior_includes_the_energy():
    """A linear f(z) = aᵀz shifts the posterior mean by Σ_post a (tilt of the prior)."""
    torch.manual_seed(0)
    sigma = 0.5
    cfg = ModelConfig(n_z=2, generator="mlp", gen_widths=(), gen_output="identity",
                      prior="ebm", energy_widths=(), sigma=sigma,
                      posterior_chain=ChainConfig(n_steps=600, step_size=0.08), data_shape=(3,))
    model = LatentEBM(cfg)
    W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.0]])
    a = torch.tensor([0.8, -0.6])
    with torch.no_grad():
        model.generator.net[0].weight.copy_(W)
        model.generator.net[0].bias.zero_()
        model.prior.energy_net.net[0].weight.copy_(a[None])
        model.prior.energy_net.net[0].bias.zero_()
    x = torch.tensor([0.7, 0.4, -0.9])
    cov = torch.linalg.inv(torch.eye(2) + W.T @ W / sigma**2)
    mean = cov @ (W.T @ x / sigma**2 + a)
    z = model.infer(x.expand(4000, 3).clone(), torch.Generator().manual_seed(4))
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=0.03, rtol=0)


def test_prior_chain_samples_a_linearly_tilted_gaussian():
    """f(z) = wᵀz + b tilts N(0, σ0² I) into N(σ0² w, σ0² I): checks the sign convention."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_z=2, generator="mlp", gen_widths=(8,), energy_widths=(),
                      sigma0=0.8, prior_chain=ChainConfig(n_steps=400, step_size=0.1),
                      data_shape=(3,), gen_output="identity")
    model = LatentEBM(cfg)
    lin = model.prior.energy_net.net[0]
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -0.5]]))
        lin.bias.fill_(3.0)
    z, _ = model.sample_latent(4000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), 0.64 * torch.tensor([1.0, -0.5]), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), 0.64 * torch.eye(2), atol=0.05, rtol=0)
