"""Samplers over any unnormalised log-density of ``z``.

Kernels (``kernels``): ``Langevin`` (unadjusted, ``z' = z + (s²/2)∇log p(z) + s ε``),
``MALA``, ``HMC`` and ``KineticLangevin``, each an ``init``/``step`` pair returning a
``State`` and an ``Info`` record, registered by name in ``KERNELS``. The runner
(``run_chain``) owns the step count, recording and progress bar; ``DualAveraging`` adapts a
Metropolis kernel's step size; ``ais_log_normalizer`` is annealed importance sampling built
on ``MALA``.
"""

from lebm.sampling.adaptation import DualAveraging
from lebm.sampling.ais import ais_log_normalizer, ais_log_weights
from lebm.sampling.kernels import (
    HMC,
    KERNELS,
    MALA,
    Info,
    Kernel,
    KineticLangevin,
    Langevin,
    LogDensity,
    State,
    build_kernel,
    log_density_and_grad,
)
from lebm.sampling.runner import ChainTrace, frozen, run_chain

__all__ = [
    "HMC",
    "KERNELS",
    "MALA",
    "ChainTrace",
    "DualAveraging",
    "Info",
    "Kernel",
    "KineticLangevin",
    "Langevin",
    "LogDensity",
    "State",
    "ais_log_normalizer",
    "ais_log_weights",
    "build_kernel",
    "frozen",
    "log_density_and_grad",
    "run_chain",
]
