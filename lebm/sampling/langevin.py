"""Unadjusted Langevin dynamics on ``z``, generic over the target log-density.

One kernel serves every chain: prior sampling targets ``log p̃(z)``, posterior
inference targets ``log p̃(z) + log p(x|z)``. The update (REFERENCE §0.2) is

    z_{k+1} = z_k + (s²/2) ∇_z log p̃(z_k) + s ε_k,     ε_k ~ N(0, I),

with step size ``s``; the noise term can be switched off. Gradients are taken with
respect to ``z`` only: the parameters of the networks inside the target are frozen for
the chain (``frozen``), so no parameter graph is built, and the returned ``z`` is
detached.

Structure (after blackjax): ``Langevin`` is the kernel (``init``/``step`` returning the
new state and an info record); ``run_chain`` is the runner that owns the number of
steps, what is recorded, and an optional progress bar.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

LogDensity = Callable[[torch.Tensor], torch.Tensor]
"""Maps ``z`` of shape ``(batch, ...)`` to unnormalised log-densities of shape ``(batch,)``."""


@dataclass
class LangevinInfo:
    """Per-step diagnostics, each of shape ``(batch,)``, evaluated at the *pre-step* ``z``."""

    log_density: torch.Tensor
    grad_norm: torch.Tensor


@dataclass
class ChainTrace:
    """Recorded chain diagnostics, each of shape ``(n_steps, batch)``."""

    log_density: torch.Tensor
    grad_norm: torch.Tensor

    def summary(self) -> dict[str, float]:
        """Means over the batch at the first and last step (one host sync)."""
        first = torch.stack([self.log_density[0].mean(), self.grad_norm[0].mean()])
        last = torch.stack([self.log_density[-1].mean(), self.grad_norm[-1].mean()])
        f, l_ = first.tolist(), last.tolist()
        return {"logp_first": f[0], "logp_last": l_[0], "grad_first": f[1], "grad_last": l_[1]}


def log_density_and_grad(
    log_density: LogDensity, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p̃(z), ∇_z Σ log p̃(z))`` with one backward pass, no graph kept."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        logp = log_density(z)
        (grad,) = torch.autograd.grad(logp.sum(), z)
    return logp.detach(), grad


class Langevin:
    """The unadjusted Langevin kernel with step size ``s`` (drift ``s²/2``, noise std ``s``)."""

    def __init__(self, step_size: float, noise: bool = True) -> None:
        if not step_size > 0:
            raise ValueError(f"Langevin step_size must be > 0, got {step_size}")
        self.step_size, self.noise = float(step_size), bool(noise)

    def init(self, z: torch.Tensor) -> torch.Tensor:
        """The chain state is ``z`` itself (detached copy)."""
        return z.detach().clone()

    def step(
        self,
        z: torch.Tensor,
        log_density: LogDensity,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, LangevinInfo]:
        """One Langevin move; returns the new state and diagnostics at the old state."""
        s = self.step_size
        logp, grad = log_density_and_grad(log_density, z)
        z_new = z + (0.5 * s * s) * grad
        if self.noise:
            z_new = z_new + s * torch.randn(
                z.shape, generator=generator, device=z.device, dtype=z.dtype
            )
        info = LangevinInfo(log_density=logp, grad_norm=grad.flatten(1).norm(dim=1))
        return z_new, info


@contextlib.contextmanager
def frozen(*modules: nn.Module | None) -> Iterator[None]:
    """Temporarily set ``requires_grad=False`` on every parameter of ``modules``.

    Inside, autograd builds a graph through the inputs only, never the parameters.
    The previous flags are restored on exit, even on error.
    """
    params = [p for m in modules if m is not None for p in m.parameters()]
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)


def run_chain(
    log_density: LogDensity,
    z0: torch.Tensor,
    n_steps: int,
    step_size: float,
    *,
    noise: bool = True,
    generator: torch.Generator | None = None,
    record: bool = False,
    progress: bool = False,
    desc: str = "langevin",
) -> tuple[torch.Tensor, ChainTrace | None]:
    """Run ``n_steps`` Langevin steps from ``z0``; return the detached final ``z``.

    With ``record=True`` also return a ``ChainTrace`` of per-step log-density and
    gradient norm (kept on device: no host sync inside the loop). Freeze the networks
    used by ``log_density`` with ``frozen(...)`` around the call.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    kernel = Langevin(step_size, noise)
    z = kernel.init(z0)
    logps: list[torch.Tensor] = []
    grads: list[torch.Tensor] = []
    steps: range | Iterator[int] = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        steps = iter(tqdm(steps, desc=desc, leave=False))
    for _ in steps:
        z, info = kernel.step(z, log_density, generator)
        if record:
            logps.append(info.log_density)
            grads.append(info.grad_norm)
    trace = None
    if record and n_steps > 0:
        trace = ChainTrace(torch.stack(logps), torch.stack(grads))
    return z.detach(), trace
