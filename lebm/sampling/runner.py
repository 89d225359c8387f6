"""The chain runner: ``init`` once, then ``step`` a kernel ``n_steps`` times.

The kernel (``lebm.sampling.kernels``) knows one transition ``z_k → z_{k+1}`` of its Markov
chain, e.g. Langevin's ``z_{k+1} = z_k + (s²/2) ∇log p̃(z_k) + s ε_k``; the runner owns
everything around it (after blackjax's split of kernels and loops): the number of steps,
which diagnostics are recorded (kept on device, no host sync inside the loop), the progress
bar, and optional step-size adaptation. The networks inside the target are frozen for the
chain with ``frozen(...)``: gradients flow to ``z`` only and no parameter graph is built.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from lebm.sampling.adaptation import DualAveraging
from lebm.sampling.kernels import Kernel, LogDensity


@dataclass
class ChainTrace:
    """Recorded per-step diagnostics, each ``(n_steps, batch)``, at each step's start state.

    ``acceptance`` (Metropolis acceptance probabilities) is ``None`` unless the kernel
    reports it.
    """

    log_density: torch.Tensor
    grad_norm: torch.Tensor
    acceptance: torch.Tensor | None = None

    def summary(self) -> dict[str, float]:
        """Batch means of log-density and gradient norm at the first and last step, and the
        mean acceptance over all steps and chains when recorded (one host sync)."""
        stats = [
            self.log_density[0].mean(),
            self.log_density[-1].mean(),
            self.grad_norm[0].mean(),
            self.grad_norm[-1].mean(),
        ]
        if self.acceptance is not None:
            stats.append(self.acceptance.mean())
        values = torch.stack([s.float() for s in stats]).tolist()
        out = {
            "logp_first": values[0],
            "logp_last": values[1],
            "grad_first": values[2],
            "grad_last": values[3],
        }
        if self.acceptance is not None:
            out["acceptance"] = values[4]
        return out


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
    kernel: Kernel,
    log_density: LogDensity,
    z0: torch.Tensor,
    n_steps: int,
    *,
    generator: torch.Generator | None = None,
    record: bool = False,
    progress: bool = False,
    desc: str = "chain",
    adaptation: DualAveraging | None = None,
) -> tuple[torch.Tensor, ChainTrace | None]:
    """Run ``kernel`` for ``n_steps`` steps on ``log_density`` from ``z0``.

    Returns the detached final ``z`` and, with ``record=True`` (and ``n_steps > 0``), a
    ``ChainTrace`` of the per-step ``Info`` fields the kernel reports. With ``adaptation``
    (kernels that report an acceptance probability only: MALA, HMC) the kernel is replaced
    after every step by ``kernel.with_step_size(adaptation.update(info.acceptance))``; read
    ``adaptation.final_step_size`` afterwards. Adaptation syncs with the host once per step.
    Freeze the networks used by ``log_density`` with ``frozen(...)`` around the call.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    state = kernel.init(z0, log_density, generator)
    logps: list[torch.Tensor] = []
    grads: list[torch.Tensor] = []
    accepts: list[torch.Tensor] = []
    steps: range | Iterator[int] = range(n_steps)
    if progress:
        from tqdm.auto import tqdm

        steps = iter(tqdm(steps, desc=desc, leave=False))
    for _ in steps:
        state, info = kernel.step(state, log_density, generator)
        if adaptation is not None:
            if info.acceptance is None:
                raise ValueError(
                    f"step-size adaptation needs a kernel that reports an acceptance "
                    f"probability (mala, hmc), not {kernel.name!r}"
                )
            kernel = kernel.with_step_size(adaptation.update(info.acceptance))
        if record:
            logps.append(info.log_density)
            grads.append(info.grad_norm)
            if info.acceptance is not None:
                accepts.append(info.acceptance)
    trace = None
    if record and n_steps > 0:
        trace = ChainTrace(
            torch.stack(logps),
            torch.stack(grads),
            torch.stack(accepts) if len(accepts) == n_steps else None,
        )
    return state.z.detach(), trace
