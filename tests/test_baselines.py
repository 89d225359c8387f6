"""The VAE and ABP baselines: the VAE loss is the exact negative ELBO; ABP is LEBM with f ≡ 0."""

from __future__ import annotations

import math

import pytest
import torch

from lebm.errors import ConfigError
from lebm.methods import ABP, VAE, Batch, LEBMConfig, VAEConfig
from lebm.methods.vae import gaussian_kl
from lebm.models import LatentEBM, ModelConfig

# a linear-Gaussian generator whose columns are orthogonal, so the exact posterior is
# diagonal and a linear encoder can represent it exactly
W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
B = torch.tensor([0.1, -0.2, 0.3])
SIGMA, SIGMA0 = 0.5, 1.5


def _linear_vae() -> LatentEBM:
    cfg = ModelConfig(n_z=2, generator="mlp", gen_widths=(), gen_output="identity",
                      prior="gaussian", encoder="mlp", inference="encoder", sigma=SIGMA,
                      sigma0=SIGMA0, data_shape=(3,))
    model = LatentEBM(cfg)
    cov = torch.linalg.inv(torch.eye(2) / SIGMA0**2 + W.T @ W / SIGMA**2)  # diagonal
    with torch.no_grad():
        model.generator.net[0].weight.copy_(W)
        model.generator.net[0].bias.copy_(B)
        head = model.encoder.head  # x → (μ, log σ²): μ = Σ Wᵀ(x − b)/σ², log σ² = log diag Σ
        a = cov @ W.T / SIGMA**2
        head.weight.zero_()
        head.weight[:2].copy_(a)
        head.bias[:2].copy_(-a @ B)
        head.bias[2:].copy_(cov.diagonal().log())
    return model


def _exact_log_px(x: torch.Tensor) -> torch.Tensor:
    cov = SIGMA0**2 * W @ W.T + SIGMA**2 * torch.eye(3)
    return torch.distributions.MultivariateNormal(B, cov).log_prob(x)


def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.full((3,), 1.7))
    want = torch.distributions.kl_divergence(q, p).sum(1)
    torch.testing.assert_close(gaussian_kl(mu, logvar, 1.7), want)


def test_vae_loss_is_the_exact_negative_elbo():
    """With q = the exact posterior the ELBO equals log p(x); −loss + log-normaliser is its
    one-draw estimate (analytic KL), so averaged over many draws it must match."""
    model = _linear_vae()
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
    xs = x.repeat(4000, 1)
    vae = VAE(model, VAEConfig())
    normaliser = model.likelihood.log_normalizer(x)
    exact = _exact_log_px(x).mean()
    with torch.no_grad():
        out = vae.step(Batch(xs), torch.Generator().manual_seed(0))
        elbo = -out.losses["model"] + normaliser
    torch.testing.assert_close(elbo, exact, atol=0.01, rtol=0)  # SE of the mean ≈ 0.003
    # the logged neg_elbo is in nats: −ELBO, the likelihood's constant included
    torch.testing.assert_close(out.metrics["neg_elbo"], -exact, atol=0.01, rtol=0)
    # a worse q gives a strictly lower ELBO
    with torch.no_grad():
        model.encoder.head.bias[2:] += 1.0
        worse = -vae.step(Batch(xs), torch.Generator().manual_seed(0)).losses["model"] + normaliser
    assert worse < exact - 0.1


def test_vae_learns_a_linear_gaussian_model():
    """Trained from scratch, the ELBO approaches the exact log-likelihood of held-out data."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    data = (torch.randn(4000, 2, generator=g) * SIGMA0) @ W.T + B
    data = data + SIGMA * torch.randn(data.shape, generator=g)
    cfg = ModelConfig(n_z=2, generator="mlp", gen_widths=(), gen_output="identity",
                      prior="gaussian", encoder="mlp", inference="encoder", sigma=SIGMA,
                      sigma0=SIGMA0, data_shape=(3,))
    model = LatentEBM(cfg)
    vae = VAE(model, VAEConfig(lr=1e-2))
    opt = torch.optim.Adam(vae.optimizers()["model"].params, lr=1e-2)
    for _ in range(600):
        idx = torch.randint(0, 4000, (200,), generator=g)
        loss = vae.step(Batch(data[idx]), g).losses["model"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = data[:1000]
    with torch.no_grad():
        elbo = (-vae.step(Batch(x.repeat(4, 1)), g).losses["model"]
                + model.likelihood.log_normalizer(x))
    exact = _exact_log_px(x).mean()
    assert exact - 0.1 < elbo < exact + 0.02  # a bound, and nearly tight at the optimum


def test_baselines_refuse_the_wrong_model():
    ebm = LatentEBM(ModelConfig(n_z=2, generator="mlp", gen_widths=(8,), data_shape=(3,),
                                gen_output="identity"))
    with pytest.raises(ConfigError, match="prior=gaussian"):
        ABP(ebm, LEBMConfig())
    with pytest.raises(ConfigError, match="prior=gaussian"):
        VAE(ebm, VAEConfig())
    no_encoder = LatentEBM(ModelConfig(n_z=2, generator="mlp", gen_widths=(8,), prior="gaussian",
                                       data_shape=(3,), gen_output="identity"))
    with pytest.raises(ConfigError, match="encoder"):
        VAE(no_encoder, VAEConfig())
    with pytest.raises(ValueError, match="needs an encoder"):
        LatentEBM(ModelConfig(n_z=2, generator="mlp", data_shape=(3,), gen_output="identity",
                              inference="encoder"))


def test_encoder_then_langevin_starts_from_q():
    """inference=encoder+langevin with 0 steps returns a draw of q: mean μ(x), var σ_q²."""
    model = _linear_vae()
    model.config.inference, model.config.posterior_chain.n_steps = "encoder+langevin", 0
    x = torch.tensor([[0.3, -0.5, 0.2]]).repeat(20000, 1)
    z = model.infer(x, torch.Generator().manual_seed(0))
    mu, logvar = model.encode(x[:1])
    torch.testing.assert_close(z.mean(0), mu[0].detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].exp().detach(), atol=0.02, rtol=0)
    assert math.isfinite(float(model.anomaly_score(x[:5]).sum()))
