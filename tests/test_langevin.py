"""Statistical tests of the Langevin sampler against known Gaussian targets."""

from __future__ import annotations

import torch
from torch import nn

from lebm.models import LatentEBM, ModelConfig
from lebm.sampling import Langevin, frozen, run_chain


def _gaussian_logp(mean: torch.Tensor, cov: torch.Tensor):
    prec = torch.linalg.inv(cov)

    def logp(z: torch.Tensor) -> torch.Tensor:
        d = z - mean
        return -0.5 * torch.einsum("bi,ij,bj->b", d, prec, d)

    return logp


def test_langevin_recovers_gaussian_mean_and_covariance():
    mean = torch.tensor([1.0, -2.0])
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]])
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(4000, 2, generator=gen)
    z, _ = run_chain(_gaussian_logp(mean, cov), z0, n_steps=1000, step_size=0.2, generator=gen)
    emp_mean = z.mean(0)
    emp_cov = torch.cov(z.T)
    # Slowest direction (variance 1.5) contracts by 1 − s²/3 per step: e^-13 after 1000 steps.
    # Monte-Carlo error of the mean ≈ sqrt(1.5/4000) ≈ 0.02; ULA inflates each variance λ by
    # about 1/(1 − s²/(4λ)), ≈ 0.01 absolute here.
    torch.testing.assert_close(emp_mean, mean, atol=0.06, rtol=0)
    torch.testing.assert_close(emp_cov, cov, atol=0.08, rtol=0)


def test_langevin_without_noise_is_gradient_ascent_to_the_mode():
    mean = torch.tensor([0.5, 0.25])
    cov = torch.eye(2) * 0.5
    z, _ = run_chain(_gaussian_logp(mean, cov), torch.randn(10, 2), n_steps=300,
                     step_size=0.3, noise=False)
    torch.testing.assert_close(z, mean.expand(10, 2), atol=1e-4, rtol=0)


def test_langevin_update_matches_the_formula():
    """z' = z + (s²/2) ∇ log p(z) + s ε with the generator's ε."""
    s = 0.3
    z = torch.randn(5, 3)
    kernel = Langevin(s)
    z_new, info = kernel.step(z, lambda u: -0.5 * (u**2).sum(1), torch.Generator().manual_seed(7))
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(z_new, z + 0.5 * s * s * (-z) + s * eps)
    torch.testing.assert_close(info.grad_norm, z.norm(dim=1))


def test_frozen_builds_no_parameter_graph_and_restores_flags():
    net = nn.Linear(3, 1)
    net.bias.requires_grad_(False)
    seen = []

    def logp(z):
        out = net(z).squeeze(-1)
        seen.append(out.grad_fn is not None and all(not p.requires_grad for p in net.parameters()))
        return out

    with frozen(net):
        run_chain(logp, torch.randn(4, 3), 3, 0.1)
    assert seen == [True, True, True]
    assert net.weight.requires_grad and not net.bias.requires_grad
    assert net.weight.grad is None


def test_prior_chain_samples_a_linearly_tilted_gaussian():
    """f(z) = wᵀz + b tilts N(0, σ0² I) into N(σ0² w, σ0² I): checks the sign convention."""
    torch.manual_seed(0)
    cfg = ModelConfig(n_z=2, generator="mlp", gen_widths=(8,), energy_widths=(),
                      sigma0=0.8, prior_steps=400, prior_step_size=0.1, data_shape=(3,),
                      gen_output="identity")
    model = LatentEBM(cfg)
    lin = model.prior.energy_net.net[0]
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -0.5]]))
        lin.bias.fill_(3.0)
    z, _ = model.sample_latent(4000, torch.Generator().manual_seed(1))
    torch.testing.assert_close(z.mean(0), 0.64 * torch.tensor([1.0, -0.5]), atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), 0.64 * torch.eye(2), atol=0.05, rtol=0)


def test_chain_trace_records_per_step_diagnostics():
    z, trace = run_chain(lambda u: -0.5 * (u**2).sum(1), torch.randn(6, 2) * 3, 7, 0.5,
                         record=True, noise=False)
    assert trace is not None
    assert trace.log_density.shape == (7, 6) and trace.grad_norm.shape == (7, 6)
    assert trace.log_density[-1].mean() > trace.log_density[0].mean()  # ascends without noise
    summary = trace.summary()
    assert summary["logp_last"] > summary["logp_first"]
