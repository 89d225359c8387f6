"""Step-size adaptation toward a target Metropolis acceptance rate.

Nesterov dual averaging of ``log ε`` (Hoffman & Gelman 2014, the NUTS paper, Algorithm 5).
With ``α_m`` the mean acceptance probability of step ``m = 1, 2, …`` and ``δ`` the target::

    H̄_m      = (1 − 1/(m + t0)) H̄_{m−1} + (δ − α_m)/(m + t0)
    log ε_m  = μ − (√m / γ) H̄_m                          (the iterate, used while adapting)
    log ε̄_m = m^{−κ} log ε_m + (1 − m^{−κ}) log ε̄_{m−1}   (the average, used afterwards)

with ``μ = log(10 ε_0)``, ``H̄_0 = 0`` and the paper's ``γ = 0.05, t0 = 10, κ = 0.75``. The
acceptance here is the batch mean over many parallel chains, so one update uses the whole
batch's step.
"""

from __future__ import annotations

import math

import torch


class DualAveraging:
    """Adapts a kernel's step size so that its mean acceptance approaches ``target``.

    Call ``update(acceptance)`` after every step and use the step size it returns for the
    next one; after adaptation, run with ``final_step_size``.
    """

    def __init__(
        self,
        initial_step_size: float,
        target: float = 0.65,
        gamma: float = 0.05,
        t0: float = 10.0,
        kappa: float = 0.75,
    ) -> None:
        if not (initial_step_size > 0 and math.isfinite(initial_step_size)):
            raise ValueError(f"initial_step_size must be a finite number > 0, "
                             f"got {initial_step_size}")
        if not 0 < target < 1:
            raise ValueError(f"target acceptance must be in (0, 1), got {target}")
        if not gamma > 0 or not t0 >= 0 or not 0.5 < kappa <= 1:
            raise ValueError(f"need gamma > 0, t0 >= 0 and 0.5 < kappa <= 1, got gamma={gamma}, "
                             f"t0={t0}, kappa={kappa}")
        self.target, self.gamma, self.t0, self.kappa = float(target), gamma, t0, kappa
        self.mu = math.log(10.0 * initial_step_size)
        self.m = 0
        self.h_bar = 0.0
        self.log_step = math.log(initial_step_size)
        self.log_step_bar = self.log_step  # replaced wholesale at m = 1 (weight 1^-κ = 1)

    def update(self, acceptance: torch.Tensor | float) -> float:
        """Take this step's acceptance (a batch is averaged; NaN counts as 0) and return the
        step size for the next step."""
        if isinstance(acceptance, torch.Tensor):
            alpha = float(acceptance.float().mean())
        else:
            alpha = float(acceptance)
        if not math.isfinite(alpha):
            alpha = 0.0
        self.m += 1
        m = self.m
        w = 1.0 / (m + self.t0)
        self.h_bar = (1.0 - w) * self.h_bar + w * (self.target - alpha)
        self.log_step = self.mu - math.sqrt(m) / self.gamma * self.h_bar
        eta = m ** (-self.kappa)
        self.log_step_bar = eta * self.log_step + (1.0 - eta) * self.log_step_bar
        return self.step_size

    @property
    def step_size(self) -> float:
        """The current iterate ``ε_m`` (the initial step size before any update)."""
        return _exp(self.log_step)

    @property
    def final_step_size(self) -> float:
        """The averaged iterate ``ε̄_m = exp(log ε̄_m)``, to use once adaptation is over."""
        return _exp(self.log_step_bar)


def _exp(x: float) -> float:
    return math.exp(min(x, 700.0))  # no OverflowError on a degenerate (flat) target
