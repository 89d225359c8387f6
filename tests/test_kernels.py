"""Contract and statistical tests of every registered MCMC kernel against Gaussian targets.

Every test is parametrised over ``KERNELS``, so a newly registered kernel is tested
automatically once it has an entry in ``SETTINGS`` (a test fails if it has none). The
statistics use many independent chains (the final state of each), so their Monte-Carlo
errors are those of an i.i.d. sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from lebm.sampling import (
    KERNELS,
    ChainTrace,
    DualAveraging,
    Info,
    State,
    build_kernel,
    run_chain,
)

N_CHAINS = 4000

# ----------------------------------------------------------------------------- targets


@dataclass
class Gaussian:
    mean: torch.Tensor
    cov: torch.Tensor

    @property
    def prec(self) -> torch.Tensor:
        return torch.linalg.inv(self.cov)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        prec = self.prec.to(z.dtype)
        d = z - self.mean.to(z.dtype)
        return -0.5 * ((d @ prec) * d).sum(1)


def _ten_d() -> Gaussian:
    """Variances spread geometrically over 0.25..4 in a random rotation, non-zero mean."""
    g = torch.Generator().manual_seed(1234)
    rot, _ = torch.linalg.qr(torch.randn(10, 10, generator=g, dtype=torch.float64))
    var = 0.25 * 16.0 ** torch.linspace(0, 1, 10, dtype=torch.float64)
    mean = torch.linspace(-1.0, 1.5, 10, dtype=torch.float64)
    return Gaussian(mean, rot @ torch.diag(var) @ rot.T)


TARGETS = {
    "2d": Gaussian(torch.tensor([1.0, -2.0], dtype=torch.float64),
                   torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)),
    "10d": _ten_d(),
}

# ------------------------------------------ the linear recursions of the unadjusted kernels
# On a Gaussian target, ∇log p(z) = −P (z − m) with P = Σ⁻¹, so in centred coordinates
# d = z − m an unadjusted kernel is x' = M x + (Gaussian noise of covariance Q). Its exact
# stationary covariance solves the discrete Lyapunov equation C = M C Mᵀ + Q.

Recursion = Callable[..., tuple[torch.Tensor, torch.Tensor]]


def ula_recursion(prec: torch.Tensor, h: float, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """d' = d + (h²/2)(−P d) + h ε."""
    eye = torch.eye(len(prec), dtype=torch.float64)
    return eye - 0.5 * h * h * prec, h * h * eye


def kinetic_recursion(prec: torch.Tensor, h: float, friction: float = 1.0,
                      **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """O-B-A-B-O on the joint x = (d, v): x' = O L (O x + n₁) + n₂ with L = B A B."""
    d = len(prec)
    eye, zero = torch.eye(d, dtype=torch.float64), torch.zeros(d, d, dtype=torch.float64)
    a = math.exp(-0.5 * friction * h)
    o = torch.block_diag(eye, a * eye)                                   # v ← a v (+ noise)
    q_o = torch.block_diag(zero, (1 - a * a) * eye)                      # noise var 1 − e^{−κh}
    b = torch.cat([torch.cat([eye, zero], 1), torch.cat([-0.5 * h * prec, eye], 1)])  # v += h/2 ∇
    a_ = torch.cat([torch.cat([eye, h * eye], 1), torch.cat([zero, eye], 1)])          # z += h v
    lin = b @ a_ @ b
    return o @ lin @ o, o @ lin @ q_o @ lin.T @ o.T + q_o


def stationary_cov(m: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Solve C = M C Mᵀ + Q: with row-major vec, vec(M C Mᵀ) = (M ⊗ M) vec(C)."""
    n = len(m)
    vec_c = torch.linalg.solve(torch.eye(n * n, dtype=torch.float64) - torch.kron(m, m),
                               q.reshape(-1))
    c = vec_c.reshape(n, n)
    return 0.5 * (c + c.T)


# ------------------------------------------------------------------------- test settings


@dataclass
class Setting:
    """How to test one kernel: step sizes and chain lengths per target, extra options, and
    what it should sample (``recursion=None``: exactly the target; else the stationary law of
    that linear recursion)."""

    runs: dict[str, tuple[float, int]]            # target → (step size, n_steps)
    metropolis: bool                              # reports an acceptance probability
    evals: tuple[int, int]                        # gradient evaluations: (init, per step)
    options: dict[str, Any] = field(default_factory=dict)
    recursion: Recursion | None = None


SETTINGS: dict[str, Setting] = {
    # Chain lengths forget the N(0, I) start by > 20 e-folds in the slowest direction
    # (λ_max = 1.5 in 2-D, 4 in 10-D): ULA and MALA contract at ≈ s²/(2 λ_max) per step
    # (times the acceptance rate), HMC by cos(T/√λ_max) per step with trajectory time
    # T = 5 × 0.2 = 1 (T/√λ < π in every direction: no resonance), kinetic Langevin at ≈ κ/2
    # per unit time. The unadjusted kernels' steps are large enough that their bias is many
    # standard errors (see below).
    "langevin": Setting({"2d": (0.7, 200), "10d": (0.7, 400)}, metropolis=False,
                        evals=(0, 1), recursion=ula_recursion),
    "mala": Setting({"2d": (0.8, 400), "10d": (0.6, 800)}, metropolis=True, evals=(1, 1)),
    "hmc": Setting({"2d": (0.2, 200), "10d": (0.2, 200)}, metropolis=True, evals=(1, 5),
                   options={"n_leapfrog": 5}),
    "kinetic": Setting({"2d": (0.8, 100), "10d": (0.7, 100)}, metropolis=False, evals=(1, 1),
                       options={"friction": 1.0}, recursion=kinetic_recursion),
}

NAMES = sorted(KERNELS)


def _setting(name: str) -> Setting:
    if name not in SETTINGS:
        pytest.fail(f"kernel {name!r} is registered in KERNELS but has no entry in "
                    f"tests/test_kernels.py SETTINGS")
    return SETTINGS[name]


def _kernel(name: str, step_size: float) -> Any:
    return build_kernel(name, step_size, **_setting(name).options)


def _sample(name: str, target: Gaussian, step_size: float, n_steps: int, seed: int = 0,
            n_chains: int = N_CHAINS) -> tuple[torch.Tensor, ChainTrace]:
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n_chains, len(target.mean), generator=gen)   # far from the target
    z, trace = run_chain(_kernel(name, step_size), target.log_density, z0, n_steps,
                         generator=gen, record=True)
    assert trace is not None
    return z.double(), trace


def moment_deviation(z: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> tuple[float, float]:
    """Largest |deviation| / standard error of the sample mean and of the sample covariance.

    For n i.i.d. draws of N(m, Σ): var(mean_i) = Σ_ii / n and var(cov_ij) ≈ (Σ_ii Σ_jj + Σ_ij²)/n.
    """
    n = z.shape[0]
    var = cov.diagonal()
    t_mean = (z.mean(0) - mean) / (var / n).sqrt()
    t_cov = (torch.cov(z.T) - cov) / ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    return float(t_mean.abs().max()), float(t_cov.abs().max())


# Up to 10 means + 55 covariances per check: with a 4.5-SE bound the chance that an exact
# sampler fails any of them is < 65 · 7e-6 ≈ 5e-4 (and the seeds are fixed). A bias of
# 4.5 SE is ~0.03 on a variance of 0.25 with 4000 chains.
N_SE = 4.5


def test_every_registered_kernel_has_test_settings():
    assert set(KERNELS) <= set(SETTINGS), f"add SETTINGS for {set(KERNELS) - set(SETTINGS)}"


def test_lyapunov_solver_matches_the_closed_form_for_ula():
    """ULA on N(m, λ) has stationary variance λ / (1 − s²/(4λ))."""
    for lam, s in [(0.3, 0.5), (2.0, 1.0), (1.0, 0.1)]:
        prec = torch.tensor([[1 / lam]], dtype=torch.float64)
        c = stationary_cov(*ula_recursion(prec, s))
        assert math.isclose(float(c), lam / (1 - s * s / (4 * lam)), rel_tol=1e-10)


# ------------------------------------------------------------------ statistical tests


@pytest.mark.parametrize("target_name", sorted(TARGETS))
@pytest.mark.parametrize("name", NAMES)
def test_kernel_samples_its_stationary_law(name, target_name):
    """Metropolis kernels sample the target exactly; unadjusted ones sample the stationary
    law of their linear recursion, whose covariance is computed from the kernel's maths.
    Both have the target's mean (the recursion's fixed point is m)."""
    setting, target = _setting(name), TARGETS[target_name]
    step_size, n_steps = setting.runs[target_name]
    z, trace = _sample(name, target, step_size, n_steps)
    if setting.recursion is None:
        expected = target.cov
    else:
        expected = stationary_cov(*setting.recursion(target.prec, step_size, **setting.options))
        expected = expected[: len(target.mean), : len(target.mean)]
    t_mean, t_cov = moment_deviation(z, target.mean, expected)
    assert t_mean < N_SE and t_cov < N_SE, (t_mean, t_cov)
    if setting.recursion is not None:
        # The step-size bias is real and this test sees it: the same draws fail the
        # exact-target check, so the comparison above is against the right (biased) law.
        assert moment_deviation(z, target.mean, target.cov)[1] > 1.5 * N_SE
    if setting.metropolis:
        assert trace.acceptance is not None
        assert 0.5 < float(trace.acceptance[-1].mean()) < 1.0


@pytest.mark.parametrize("name", [n for n in NAMES if SETTINGS.get(n) and SETTINGS[n].recursion])
def test_unadjusted_kernels_bias_shrinks_with_the_step_size(name):
    """Halving the step shrinks the stationary covariance's bias ‖C_z(h) − Σ‖ (exact, from
    the recursion), and the kernel run at h/2 samples C_z(h/2) within Monte-Carlo error."""
    setting, target = _setting(name), TARGETS["2d"]
    h, n_steps = setting.runs["2d"]
    d = len(target.mean)
    biases = []
    for step in (h, h / 2):
        cov = stationary_cov(*setting.recursion(target.prec, step, **setting.options))[:d, :d]
        biases.append(float(torch.linalg.matrix_norm(cov - target.cov)))
    assert biases[1] < 0.6 * biases[0], biases        # O(h²) bias: a factor ≈ 4
    # Mixing time grows like 1/h² for ULA and 1/h for kinetic Langevin: 4× the steps is enough.
    z, _ = _sample(name, target, h / 2, 4 * n_steps, seed=1)
    cov = stationary_cov(*setting.recursion(target.prec, h / 2, **setting.options))[:d, :d]
    t_mean, t_cov = moment_deviation(z, target.mean, cov)
    assert t_mean < N_SE and t_cov < N_SE, (t_mean, t_cov)


# --------------------------------------------------------------------- contract tests


def _counting(log_density: Callable[[torch.Tensor], torch.Tensor]):
    calls = [0]

    def counted(z: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        return log_density(z)

    return counted, calls


@pytest.mark.parametrize("name", NAMES)
def test_info_and_state_are_consistent(name):
    """Info describes the start state; cached log-density and gradient match the new z."""
    setting = _setting(name)
    target = TARGETS["2d"]
    kernel = _kernel(name, setting.runs["2d"][0])
    gen = torch.Generator().manual_seed(3)
    state = kernel.init(torch.randn(64, 2, generator=gen), target.log_density, gen)
    assert isinstance(state, State) and not state.z.requires_grad
    for _ in range(3):
        start = state.z.clone()
        state, info = kernel.step(state, target.log_density, gen)
        assert isinstance(info, Info) and isinstance(state, State)
        assert state.z.shape == start.shape and not state.z.requires_grad
        torch.testing.assert_close(info.log_density, target.log_density(start))
        grad = -(start.double() - target.mean) @ target.prec
        torch.testing.assert_close(info.grad_norm, grad.norm(dim=1).float())
        if setting.metropolis:
            assert info.acceptance is not None and info.acceptance.shape == (64,)
            assert bool(((info.acceptance >= 0) & (info.acceptance <= 1)).all())
        else:
            assert info.acceptance is None
        if state.log_density is not None:
            torch.testing.assert_close(state.log_density, target.log_density(state.z))
        if state.grad is not None:
            torch.testing.assert_close(
                state.grad, (-(state.z.double() - target.mean) @ target.prec).float())


@pytest.mark.parametrize("name", NAMES)
def test_gradient_evaluations_per_step(name):
    setting = _setting(name)
    counted, calls = _counting(TARGETS["2d"].log_density)
    run_chain(_kernel(name, 0.1), counted, torch.randn(5, 2), 7)
    init, per_step = setting.evals
    assert calls[0] == init + 7 * per_step


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_the_same_chain(name):
    target = TARGETS["2d"]
    z0 = torch.randn(16, 2)

    def run(seed: int) -> torch.Tensor:
        z, _ = run_chain(_kernel(name, 0.3), target.log_density, z0, 10,
                         generator=torch.Generator().manual_seed(seed))
        return z

    assert torch.equal(run(5), run(5))
    assert not torch.equal(run(5), run(6))


@pytest.mark.parametrize("name", NAMES)
def test_run_chain_records_a_trace_and_zero_steps_return_z0(name):
    setting = _setting(name)
    target = TARGETS["2d"]
    z0 = torch.randn(6, 2) * 3
    z, trace = run_chain(_kernel(name, 0.2), target.log_density, z0, 7, record=True,
                         generator=torch.Generator().manual_seed(0))
    assert z.shape == (6, 2) and trace is not None
    assert trace.log_density.shape == (7, 6) and trace.grad_norm.shape == (7, 6)
    summary = trace.summary()
    assert {"logp_first", "logp_last", "grad_first", "grad_last"} <= set(summary)
    if setting.metropolis:
        assert trace.acceptance is not None and trace.acceptance.shape == (7, 6)
        assert 0 <= summary["acceptance"] <= 1
    else:
        assert trace.acceptance is None and "acceptance" not in summary
    z, trace = run_chain(_kernel(name, 0.2), target.log_density, z0, 0, record=True)
    assert torch.equal(z, z0) and trace is None
    with pytest.raises(ValueError, match="n_steps"):
        run_chain(_kernel(name, 0.2), target.log_density, z0, -1)


@pytest.mark.parametrize("name", NAMES)
def test_build_kernel_and_with_step_size(name):
    setting = _setting(name)
    kernel = build_kernel(name, 0.25, **setting.options)
    assert isinstance(kernel, KERNELS[name]) and kernel.name == name
    assert kernel.step_size == 0.25
    other = kernel.with_step_size(0.5)
    assert type(other) is type(kernel) and other.step_size == 0.5 and kernel.step_size == 0.25
    for option, value in setting.options.items():
        assert getattr(other, option) == value
    with pytest.raises(ValueError, match="step_size"):
        kernel.with_step_size(0.0)


def test_build_kernel_passes_each_setting_to_its_kernel():
    assert build_kernel("langevin", 0.1, noise=False).noise is False
    assert build_kernel("hmc", 0.1, n_leapfrog=3).n_leapfrog == 3
    assert build_kernel("kinetic", 0.1, friction=2.5).friction == 2.5


def test_build_kernel_rejects_bad_settings():
    with pytest.raises(ValueError, match="unknown kernel 'nuts'.*langevin, mala, hmc, kinetic"):
        build_kernel("nuts", 0.1)
    for name in NAMES:
        for bad in (0.0, -0.1, math.nan, math.inf):
            with pytest.raises(ValueError, match="step_size"):
                build_kernel(name, bad)
        with pytest.raises(ValueError, match="n_leapfrog"):
            build_kernel(name, 0.1, n_leapfrog=0)
        for bad in (0.0, -1.0):
            with pytest.raises(ValueError, match="friction"):
                build_kernel(name, 0.1, friction=bad)
        if name != "langevin":
            with pytest.raises(ValueError, match="noise"):
                build_kernel(name, 0.1, noise=False)


# -------------------------------------------------------------- Metropolis kernels only

METROPOLIS = [n for n in NAMES if n in SETTINGS and SETTINGS[n].metropolis]


@pytest.mark.parametrize("name", METROPOLIS)
def test_acceptance_is_a_probability_and_drops_for_too_large_steps(name):
    target = TARGETS["10d"]
    step_size = _setting(name).runs["10d"][0]
    _, good = _sample(name, target, step_size, 30, n_chains=500)
    _, bad = _sample(name, target, 6 * step_size, 30, n_chains=500)
    assert good.acceptance is not None and bad.acceptance is not None
    assert bool(((good.acceptance > 0) & (good.acceptance <= 1)).all())
    assert bool(((bad.acceptance >= 0) & (bad.acceptance <= 1)).all())
    assert float(good.acceptance.mean()) > 0.5
    assert float(bad.acceptance.mean()) < 0.3


@pytest.mark.parametrize("name", METROPOLIS)
def test_tiny_steps_are_accepted(name):
    """As s → 0 the acceptance → 1, also where s ε is below float32 resolution of z: the
    Metropolis ratio must use the move actually made, not the drawn ε."""
    target = TARGETS["10d"]
    z0 = 3 * torch.randn(500, 10, generator=torch.Generator().manual_seed(0))
    for step_size in (1e-3, 1e-7):
        _, trace = run_chain(_kernel(name, step_size), target.log_density, z0, 3, record=True,
                             generator=torch.Generator().manual_seed(1))
        assert trace is not None and trace.acceptance is not None
        assert float(trace.acceptance.mean()) > 0.99, step_size


@pytest.mark.parametrize("bad_value", [math.nan, math.inf])
@pytest.mark.parametrize("name", METROPOLIS)
def test_non_finite_proposals_are_rejected(name, bad_value):
    """Once the target returns NaN/inf everywhere else, every proposal is rejected."""
    broken = [False]

    def log_density(z: torch.Tensor) -> torch.Tensor:
        logp = -0.5 * z.pow(2).sum(1)
        return logp + bad_value * z.sum(1) if broken[0] else logp

    kernel = _kernel(name, 0.3)
    gen = torch.Generator().manual_seed(0)
    state = kernel.init(torch.randn(8, 2, generator=gen), log_density, gen)
    start, logp = state.z.clone(), state.log_density.clone()
    broken[0] = True
    state, info = kernel.step(state, log_density, gen)
    assert torch.equal(state.z, start) and torch.equal(state.log_density, logp)
    assert info.acceptance is not None and bool((info.acceptance == 0).all())


@pytest.mark.parametrize("initial", [0.005, 5.0])
def test_dual_averaging_reaches_the_target_acceptance(initial):
    """MALA on the 10-D Gaussian from a step 100× too small or ~10× too large."""
    target = TARGETS["10d"]
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(1000, 10, generator=gen)
    adaptation = DualAveraging(initial, target=0.65)
    z, trace = run_chain(build_kernel("mala", initial), target.log_density, z0, 300,
                         generator=gen, record=True, adaptation=adaptation)
    assert trace is not None and trace.acceptance is not None
    assert abs(float(trace.acceptance[-100:].mean()) - 0.65) < 0.05
    # the averaged step size, used after adaptation, also gives about the target acceptance
    _, trace = run_chain(build_kernel("mala", adaptation.final_step_size), target.log_density,
                         z, 50, generator=gen, record=True)
    assert trace is not None and trace.acceptance is not None
    assert abs(float(trace.acceptance.mean()) - 0.65) < 0.05, adaptation.final_step_size


def test_dual_averaging_steps_the_right_way_and_validates():
    up, down = DualAveraging(0.1), DualAveraging(0.1)
    for _ in range(30):
        up.update(1.0)
        down.update(torch.zeros(8))
    assert up.step_size > 0.1 > down.step_size
    assert up.final_step_size > 0.1 > down.final_step_size
    for bad in ({"initial_step_size": 0.0}, {"initial_step_size": 0.1, "target": 1.0},
                {"initial_step_size": 0.1, "kappa": 0.5}):
        with pytest.raises(ValueError):
            DualAveraging(**bad)


def test_adaptation_needs_a_kernel_with_acceptance():
    with pytest.raises(ValueError, match="acceptance"):
        run_chain(build_kernel("langevin", 0.1), TARGETS["2d"].log_density, torch.randn(4, 2), 3,
                  adaptation=DualAveraging(0.1))
