"""MCMC kernels on ``z``, generic over the target's unnormalised log-density.

Every chain in lebm (prior sampling on ``log p̃(z) = f(z) − ‖z‖²/(2σ0²)``, with ``f`` the
*negative* energy; posterior inference on ``log p̃(z) + log p(x|z)``) is one of these kernels
run on a log-density ``log p``. Below ``s`` or ``h`` is the kernel's ``step_size`` and
``ε, ξ ~ N(0, I)`` are drawn from the caller's ``torch.Generator``.

* ``Langevin`` — unadjusted Langevin (ULA; REFERENCE §0.2), the short-run sampler of the
  papers; biased by the step size (on N(m, λ) its stationary variance is λ / (1 − s²/(4λ)))::

      z' = z + (s²/2) ∇log p(z) + s ε                (the noise term can be switched off)

* ``MALA`` — the same proposal, corrected by Metropolis–Hastings so ``p`` is exactly
  invariant::

      z* = z + (s²/2) ∇log p(z) + s ε,   q(z* | z) = N(z*; z + (s²/2) ∇log p(z), s² I)
      accept z* with probability min(1, p(z*) q(z | z*) / (p(z) q(z* | z)))

* ``HMC`` — Hamiltonian Monte Carlo with unit mass: fresh momentum ``p ~ N(0, I)``, then
  ``n_leapfrog`` leapfrog steps of size ``h`` on ``H(z, p) = −log p(z) + ‖p‖²/2``
  (p ← p + (h/2)∇log p(z);  z ← z + h p;  p ← p + (h/2)∇log p(z)), accepted with probability
  ``min(1, exp(−ΔH))``.

* ``KineticLangevin`` — underdamped Langevin with unit mass and friction ``κ``, discretised
  by the O-B-A-B-O splitting (one gradient per step, no Metropolis correction)::

      O: v ← e^{−κh/2} v + √(1 − e^{−κh}) ξ      B: v ← v + (h/2) ∇log p(z)      A: z ← z + h v

Structure (after blackjax): a kernel holds only its settings; ``init(z, log_density)``
builds a ``State`` and ``step(state, log_density, generator)`` returns the next ``State``
and an ``Info`` record of diagnostics. The runner (``lebm.sampling.runner.run_chain``) owns
the number of steps, what is recorded and the progress bar. Gradients are taken with respect
to ``z`` only; every tensor a kernel returns is detached.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

LogDensity = Callable[[torch.Tensor], torch.Tensor]
"""Maps ``z`` of shape ``(batch, dim)`` to unnormalised log-densities of shape ``(batch,)``."""


@dataclass
class State:
    """A batch of chains: positions and, where a kernel keeps them, cached evaluations.

    ``log_density`` and ``grad`` are ``log p(z)`` and ``∇log p(z)`` at ``z`` (``None`` when not
    evaluated yet); ``momentum`` is the velocity of kinetic Langevin.
    """

    z: torch.Tensor
    log_density: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    momentum: torch.Tensor | None = None


@dataclass
class Info:
    """Diagnostics of one step, each ``(batch,)``, at the state the step *started* from.

    ``acceptance`` is the Metropolis acceptance probability ``min(1, α)`` of the step's
    proposal (MALA and HMC only; ``None`` for kernels without a correction).
    """

    log_density: torch.Tensor
    grad_norm: torch.Tensor
    acceptance: torch.Tensor | None = None


def log_density_and_grad(
    log_density: LogDensity, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p̃(z), ∇_z Σ log p̃(z))`` with one backward pass, no graph kept."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        logp = log_density(z)
        (grad,) = torch.autograd.grad(logp.sum(), z)
    return logp.detach(), grad


class Kernel(Protocol):
    """What the runner needs of a kernel: settings, ``init``, ``step``, ``with_step_size``."""

    name: ClassVar[str]

    @property
    def step_size(self) -> float: ...

    def init(
        self, z: torch.Tensor, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> State: ...

    def step(
        self, state: State, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> tuple[State, Info]: ...

    def with_step_size(self, step_size: float) -> Kernel: ...


# ---------------------------------------------------------------------------- helpers


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _randn_like(z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)


def _grad_norm(grad: torch.Tensor) -> torch.Tensor:
    return grad.flatten(1).norm(dim=1)


def _half_sq_norm(x: torch.Tensor) -> torch.Tensor:
    """``‖x‖²/2`` per chain, in at least float32."""
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    return 0.5 * x.pow(2).flatten(1).sum(1)


def _evaluated(state: State, log_density: LogDensity) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p, ∇log p)`` at ``state.z``: the cached values, else one evaluation."""
    if state.log_density is not None and state.grad is not None:
        return state.log_density, state.grad
    return log_density_and_grad(log_density, state.z)


def _metropolis(
    log_alpha: torch.Tensor, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-chain accept flags (``u < α``) and acceptance probabilities ``min(1, α)``.

    A non-finite ``log α`` (a NaN or infinite log-density or gradient at the proposal) is a
    rejection.
    """
    log_alpha = torch.where(
        torch.isfinite(log_alpha), log_alpha, torch.full_like(log_alpha, -math.inf)
    )
    u = torch.rand(
        log_alpha.shape, generator=generator, device=log_alpha.device, dtype=log_alpha.dtype
    )
    return u.log() < log_alpha, log_alpha.clamp(max=0.0).exp()


def _select(accept: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` where the chain accepted, else ``old`` (``accept`` is ``(batch,)``)."""
    return torch.where(accept.view(-1, *([1] * (new.dim() - 1))), new, old)


Evaluated = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # z, log p(z), ∇log p(z)


def _accept_or_stay(log_alpha: torch.Tensor, proposal: Evaluated, current: Evaluated,
                    generator: torch.Generator | None) -> tuple[State, torch.Tensor]:
    """The Metropolis step: per chain the proposal (with its cached evaluation) where
    accepted, else the current state; and the acceptance probabilities."""
    accept, acceptance = _metropolis(log_alpha, generator)
    z, logp, grad = (_select(accept, new, old) for new, old in zip(proposal, current))
    return State(z=z, log_density=logp, grad=grad), acceptance


def _promoted(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.promote_types(x.dtype, torch.float32))


# ---------------------------------------------------------------------------- kernels


class _Settings:
    """What every kernel shares: a copy with another step size (kernels are immutable)."""

    def with_step_size(self, step_size: float) -> Any:
        return dataclasses.replace(self, step_size=step_size)  # type: ignore[type-var]


class _Evaluated(_Settings):
    """Kernels whose state carries ``log p`` and its gradient (the Metropolis kernels)."""

    def init(
        self, z: torch.Tensor, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> State:
        """Evaluates ``log p`` and its gradient at ``z``; no randomness used."""
        z = z.detach().clone()
        logp, grad = log_density_and_grad(log_density, z)
        return State(z=z, log_density=logp, grad=grad)


@dataclass(frozen=True)
class Langevin(_Settings):
    """Unadjusted Langevin: ``z' = z + (s²/2) ∇log p(z) + s ε`` (drift ``s²/2``, noise std ``s``).

    Lazy: ``init`` evaluates nothing, and the returned state is not evaluated either, so a
    K-step chain costs exactly K gradient evaluations. ``noise=False`` is gradient ascent
    on ``log p`` with learning rate ``s²/2``.
    """

    name: ClassVar[str] = "langevin"
    step_size: float
    noise: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", _check_positive("step_size", self.step_size))
        object.__setattr__(self, "noise", bool(self.noise))

    def init(
        self, z: torch.Tensor, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> State:
        """The state is a detached copy of ``z``; nothing is evaluated, no randomness used."""
        return State(z=z.detach().clone())

    def step(
        self, state: State, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> tuple[State, Info]:
        """One Langevin move; returns the new (unevaluated) state and diagnostics at the old."""
        s = self.step_size
        z = state.z
        logp, grad = _evaluated(state, log_density)
        z_new = z + (0.5 * s * s) * grad
        if self.noise:
            z_new = z_new + s * _randn_like(z, generator)
        info = Info(log_density=logp, grad_norm=_grad_norm(grad))
        return State(z=z_new.detach()), info


@dataclass(frozen=True)
class MALA(_Evaluated):
    """Metropolis-adjusted Langevin: the Langevin proposal ``z* = z + (s²/2)∇log p(z) + s ε``
    accepted with probability ``min(1, p(z*) q(z|z*) / (p(z) q(z*|z)))``, where
    ``q(a|b) = N(a; b + (s²/2)∇log p(b), s² I)``. Leaves ``p`` exactly invariant; one
    gradient evaluation per step (plus one in ``init``).
    """

    name: ClassVar[str] = "mala"
    step_size: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", _check_positive("step_size", self.step_size))

    def step(
        self, state: State, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> tuple[State, Info]:
        s = self.step_size
        z = state.z
        logp, grad = _evaluated(state, log_density)
        proposal = z + (0.5 * s * s) * grad + s * _randn_like(z, generator)
        logp_p, grad_p = log_density_and_grad(log_density, proposal)
        # log q(z*|z) = −‖z* − z − (s²/2)∇log p(z)‖²/(2s²), log q(z|z*) likewise, both from the
        # displacement d = z* − z actually taken (not from ε: z + s ε is rounded, which at
        # small s or in bfloat16 would bias the ratio), in at least float32.
        d = _promoted(proposal) - _promoted(z)
        log_q_fwd = -_half_sq_norm((d - (0.5 * s * s) * _promoted(grad)) / s)
        log_q_bwd = -_half_sq_norm((-d - (0.5 * s * s) * _promoted(grad_p)) / s)
        log_alpha = _promoted(logp_p) - _promoted(logp) + log_q_bwd - log_q_fwd
        new, acceptance = _accept_or_stay(log_alpha, (proposal, logp_p, grad_p), (z, logp, grad),
                                          generator)
        return new, Info(log_density=logp, grad_norm=_grad_norm(grad), acceptance=acceptance)


@dataclass(frozen=True)
class HMC(_Evaluated):
    """Hamiltonian Monte Carlo with unit mass and ``n_leapfrog`` leapfrog steps of size ``h``.

    Each step draws ``p ~ N(0, I)``, integrates ``dz/dt = p, dp/dt = ∇log p(z)`` by leapfrog
    and accepts with probability ``min(1, exp(−ΔH))``, ``H = −log p(z) + ‖p‖²/2``. The start
    state's gradient is reused: ``n_leapfrog`` gradient evaluations per step.
    """

    name: ClassVar[str] = "hmc"
    step_size: float
    n_leapfrog: int = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", _check_positive("step_size", self.step_size))
        if int(self.n_leapfrog) != self.n_leapfrog or self.n_leapfrog < 1:
            raise ValueError(f"n_leapfrog must be an integer >= 1, got {self.n_leapfrog}")
        object.__setattr__(self, "n_leapfrog", int(self.n_leapfrog))

    def step(
        self, state: State, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> tuple[State, Info]:
        h = self.step_size
        z0 = state.z
        logp0, grad0 = _evaluated(state, log_density)
        p0 = _randn_like(z0, generator)
        z, logp, grad = z0, logp0, grad0
        p = p0 + (0.5 * h) * grad
        for i in range(self.n_leapfrog):
            z = z + h * p
            logp, grad = log_density_and_grad(log_density, z)
            p = p + (h if i < self.n_leapfrog - 1 else 0.5 * h) * grad
        # −ΔH = (log p(z_L) − ‖p_L‖²/2) − (log p(z_0) − ‖p_0‖²/2)
        log_alpha = (_promoted(logp) - _half_sq_norm(p)) - (_promoted(logp0) - _half_sq_norm(p0))
        new, acceptance = _accept_or_stay(log_alpha, (z, logp, grad), (z0, logp0, grad0),
                                          generator)
        return new, Info(log_density=logp0, grad_norm=_grad_norm(grad0), acceptance=acceptance)


@dataclass(frozen=True)
class KineticLangevin(_Settings):
    """Underdamped (kinetic) Langevin with unit mass, friction ``κ`` and time step ``h``.

    Discretises the SDE ``dz = v dt,  dv = ∇log p(z) dt − κ v dt + √(2κ) dW`` (stationary
    law ``p(z) N(v; 0, I)``) by the O-B-A-B-O splitting::

        O: v ← e^{−κh/2} v + √(1 − e^{−κh}) ξ     (the exact Ornstein–Uhlenbeck flow for h/2)
        B: v ← v + (h/2) ∇log p(z)
        A: z ← z + h v
        B, O as above

    One gradient evaluation per step, no Metropolis correction, so like ``Langevin`` it is
    biased by ``h``. ``init`` draws ``v ~ N(0, I)``; the velocity persists across steps.

    For comparison with the GEBM code (Arbel et al. 2021): its "LMC" sampler with parameters
    ``(γ, κ)`` is this SDE with time step ``h = 2·√γ`` and the same friction ``κ``; its step is
    the A-B-O-B-A splitting with one full O step (``v ← e^{−κh} v + √(1 − e^{−2κh}) ξ``) in the
    middle. Both splittings target the same SDE.
    """

    name: ClassVar[str] = "kinetic"
    step_size: float
    friction: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", _check_positive("step_size", self.step_size))
        object.__setattr__(self, "friction", _check_positive("friction", self.friction))

    def init(
        self, z: torch.Tensor, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> State:
        """Draws the velocity ``v ~ N(0, I)`` and evaluates ``log p`` and its gradient at ``z``."""
        z = z.detach().clone()
        v = _randn_like(z, generator)
        logp, grad = log_density_and_grad(log_density, z)
        return State(z=z, log_density=logp, grad=grad, momentum=v)

    def step(
        self, state: State, log_density: LogDensity, generator: torch.Generator | None = None
    ) -> tuple[State, Info]:
        """One O-B-A-B-O step (a state without velocity gets a fresh ``v ~ N(0, I)``)."""
        h, kappa = self.step_size, self.friction
        decay = math.exp(-0.5 * kappa * h)
        kick = math.sqrt(-math.expm1(-kappa * h))  # √(1 − e^{−κh}), accurate for small κh
        logp, grad = _evaluated(state, log_density)
        v = state.momentum if state.momentum is not None else _randn_like(state.z, generator)
        v = decay * v + kick * _randn_like(v, generator)
        v = v + (0.5 * h) * grad
        z = state.z + h * v
        logp_new, grad_new = log_density_and_grad(log_density, z)
        v = v + (0.5 * h) * grad_new
        v = decay * v + kick * _randn_like(v, generator)
        new = State(z=z.detach(), log_density=logp_new, grad=grad_new, momentum=v.detach())
        return new, Info(log_density=logp, grad_norm=_grad_norm(grad))


KERNELS: dict[str, type] = {
    "langevin": Langevin,
    "mala": MALA,
    "hmc": HMC,
    "kinetic": KineticLangevin,
}
"""The registry: kernel name → class. ``build_kernel`` constructs one from a chain config."""


def build_kernel(
    name: str,
    step_size: float,
    *,
    noise: bool = True,
    n_leapfrog: int = 5,
    friction: float = 1.0,
) -> Kernel:
    """The kernel ``name`` with the chain settings that apply to it.

    Every setting is validated whether or not the kernel uses it; ``noise=False`` is only
    meaningful for (and only accepted by) kernels with a ``noise`` setting (``"langevin"``).
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; choose one of {', '.join(KERNELS)}")
    _check_positive("step_size", step_size)
    _check_positive("friction", friction)
    if int(n_leapfrog) != n_leapfrog or n_leapfrog < 1:
        raise ValueError(f"n_leapfrog must be an integer >= 1, got {n_leapfrog}")
    cls = KERNELS[name]
    accepted = inspect.signature(cls).parameters
    if not noise and "noise" not in accepted:
        raise ValueError(f"noise=False is only available for the 'langevin' kernel, not {name!r}")
    options: dict[str, Any] = {"noise": noise, "n_leapfrog": n_leapfrog, "friction": friction}
    kernel: Kernel = cls(step_size, **{k: v for k, v in options.items() if k in accepted})
    return kernel
