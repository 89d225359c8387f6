"""Samplers over any unnormalised log-density of ``z``."""

from lebm.sampling.langevin import ChainTrace, Langevin, LangevinInfo, frozen, run_chain

__all__ = ["ChainTrace", "Langevin", "LangevinInfo", "frozen", "run_chain"]
