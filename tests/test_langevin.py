"""Statistical tests of the Langevin sampler against known Gaussian targets."""

from __future__ import annotations

import torch
from torch import nn

from lebm.sampling import Langevin, State, frozen, run_chain


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
    z, _ = run_chain(Langevin(0.2), _gaussian_logp(mean, cov), z0, n_steps=1000, generator=gen)
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
    z, _ = run_chain(Langevin(0.3, noise=False), _gaussian_logp(mean, cov), torch.randn(10, 2),
                     n_steps=300)
    torch.testing.assert_close(z, mean.expand(10, 2), atol=1e-4, rtol=0)


def test_langevin_update_matches_the_formula():
    """z' = z + (s²/2) ∇ log p(z) + s ε with the generator's ε."""
    s = 0.3
    z = torch.randn(5, 3)
    kernel = Langevin(s)

    def logp(u: torch.Tensor) -> torch.Tensor:
        return -0.5 * (u**2).sum(1)

    state, info = kernel.step(kernel.init(z, logp), logp, torch.Generator().manual_seed(7))
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(state.z, z + 0.5 * s * s * (-z) + s * eps)
    torch.testing.assert_close(info.grad_norm, z.norm(dim=1))
    torch.testing.assert_close(info.log_density, logp(z))
    assert info.acceptance is None and state.log_density is None and state.grad is None


def test_run_chain_is_the_langevin_recursion_bit_for_bit():
    """K steps of run_chain = K explicit updates with the generator's ε, exactly (same
    operations, same order, one gradient per step), with or without noise."""
    w = torch.randn(3)
    calls = []

    def logp(u: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.tanh(u @ w) - 0.5 * (u**2).sum(1)

    z0 = torch.randn(8, 3)
    for noise in (True, False):
        calls.clear()
        z, _ = run_chain(Langevin(0.4, noise=noise), logp, z0, 5,
                         generator=torch.Generator().manual_seed(2))
        assert len(calls) == 5
        gen = torch.Generator().manual_seed(2)
        ref = z0.clone()
        for _ in range(5):
            u = ref.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(logp(u).sum(), u)
            ref = ref + (0.5 * 0.4 * 0.4) * grad
            if noise:
                ref = ref + 0.4 * torch.randn(ref.shape, generator=gen)
        assert torch.equal(z, ref)


def test_langevin_uses_a_cached_evaluation_when_the_state_has_one():
    kernel = Langevin(0.5, noise=False)
    z = torch.randn(4, 2)
    state = State(z=z, log_density=torch.zeros(4), grad=torch.ones(4, 2))
    new, info = kernel.step(state, lambda u: -(u**2).sum(1))
    torch.testing.assert_close(new.z, z + 0.125)
    assert torch.equal(info.log_density, torch.zeros(4))


def test_frozen_builds_no_parameter_graph_and_restores_flags():
    net = nn.Linear(3, 1)
    net.bias.requires_grad_(False)
    seen = []

    def logp(z):
        out = net(z).squeeze(-1)
        seen.append(out.grad_fn is not None and all(not p.requires_grad for p in net.parameters()))
        return out

    with frozen(net):
        run_chain(Langevin(0.1), logp, torch.randn(4, 3), 3)
    assert seen == [True, True, True]
    assert net.weight.requires_grad and not net.bias.requires_grad
    assert net.weight.grad is None


def test_chain_trace_records_per_step_diagnostics():
    z, trace = run_chain(Langevin(0.5, noise=False), lambda u: -0.5 * (u**2).sum(1),
                         torch.randn(6, 2) * 3, 7, record=True)
    assert trace is not None
    assert trace.log_density.shape == (7, 6) and trace.grad_norm.shape == (7, 6)
    assert trace.log_density[-1].mean() > trace.log_density[0].mean()  # ascends without noise
    summary = trace.summary()
    assert summary["logp_last"] > summary["logp_first"]
