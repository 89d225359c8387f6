"""Settings every latent model shares: its two chains and the chains' precision.

A chain's settings are their own config (``ChainConfig``), not the model's: the model holds
two of them, ``prior_chain`` and ``posterior_chain`` (``--set model.prior_chain.step_size=0.3``).
The flat keys of earlier versions (``prior_steps``, ``posterior_step_size``, ``init_std``,
``langevin_noise``, ``chain_dtype``, …) stay accepted as aliases (``ModelConfig.ALIASES``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lebm.errors import ConfigError
from lebm.sampling import KERNELS, Kernel, build_kernel

CHAIN_DTYPES = ("float32", "bfloat16", "auto")


@dataclass
class ChainConfig:
    """One MCMC chain: which kernel, how long, how big a step, where it starts.

    ``step_size`` is the kernel's own step (REFERENCE §0.2): Langevin and MALA
    ``z ← z + (s²/2) ∇ log p̃(z) + s ε``; HMC the leapfrog step; kinetic Langevin the time step
    ``h`` (friction ``friction``). Chains start at ``N(0, init_std² I)``.
    """

    kernel: str = field(default="langevin", metadata={"choices": tuple(KERNELS)})
    n_steps: int = field(default=20, metadata={"min": 0})
    step_size: float = field(default=0.1, metadata={"gt": 0})
    noise: bool = field(default=True, metadata={
        "help": "langevin only: false = gradient ascent on log p̃"})
    init_std: float = field(default=1.0, metadata={"gt": 0,
                                                   "help": "chains start at N(0, init_std²)"})
    n_leapfrog: int = field(default=5, metadata={"min": 1, "help": "hmc: leapfrog steps"})
    friction: float = field(default=1.0, metadata={"gt": 0, "help": "kinetic: friction κ"})

    def make_kernel(self, step_scale: float = 1.0) -> Kernel:
        """The kernel these settings describe, its step size multiplied by ``step_scale``."""
        return build_kernel(self.kernel, self.step_size * step_scale, noise=self.noise,
                            n_leapfrog=self.n_leapfrog, friction=self.friction)

    def rules(self, label: str) -> None:
        if not self.noise and self.kernel != "langevin":
            raise ConfigError(f"{label}noise: false only applies to the langevin kernel, "
                              f"not {self.kernel}")


def prior_chain_default() -> ChainConfig:
    """LEBM's prior chain: 60 Langevin steps of size 0.4 (REFERENCE §1.3)."""
    return ChainConfig(n_steps=60, step_size=0.4)


def posterior_chain_default() -> ChainConfig:
    """LEBM's posterior chain: 20 Langevin steps of size 0.1 (REFERENCE §1.3)."""
    return ChainConfig(n_steps=20, step_size=0.1)


@dataclass
class PrecisionConfig:
    """Floating-point settings of the chains and the learning update (docs/performance.md)."""

    chain_dtype: str = field(default="float32", metadata={
        "choices": CHAIN_DTYPES,
        "help": "generator precision inside chains (auto = bfloat16 where the hardware has "
                "native bf16 matmul); z, noise and updates stay float32"})
    channels_last: bool = field(default=False, metadata={
        "help": "channels-last conv weights inside chains (faster oneDNN/cuDNN kernels)"})
    compile: bool = field(default=False, metadata={
        "help": "torch.compile the networks inside chains (CUDA graphs on GPU)"})
    update_dtype: str = field(default="float32", metadata={
        "choices": CHAIN_DTYPES,
        "help": "autocast precision of g's forward/backward in the learning update; "
                "weights and optimiser stay float32"})


# Flat keys of lebm ≤ 0.1 and the nested paths they now set (presets, --set, config.json).
CHAIN_ALIASES: dict[str, tuple[str, ...]] = {
    "prior_steps": ("prior_chain.n_steps",),
    "prior_step_size": ("prior_chain.step_size",),
    "posterior_steps": ("posterior_chain.n_steps",),
    "posterior_step_size": ("posterior_chain.step_size",),
    "init_std": ("prior_chain.init_std", "posterior_chain.init_std"),
    "langevin_noise": ("prior_chain.noise", "posterior_chain.noise"),
    "chain_dtype": ("precision.chain_dtype",),
    "channels_last": ("precision.channels_last",),
    "compile": ("precision.compile",),
    "update_dtype": ("precision.update_dtype",),
}
