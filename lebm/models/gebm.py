"""``GEBM``: a base generator corrected by a data-space energy, sampled in latent space.

Generalised EBM (Arbel, Zhou & Gretton, ICLR 2021; REFERENCE §5). A base generator ``G``
pushes ``η = N(0, I)`` forward; an energy ``E`` on data (low on data) tilts it::

    Q(dx) ∝ exp(−E(x)) G(dx),        sampled as  x = G(z),  ν(z) ∝ N(z; 0, I) exp(−T·E(G(z)))

In this library's convention that is a latent EBM whose negative energy is
``f(z) = −T·E(G(z))`` (``DataEnergyPrior``): every kernel (Langevin, MALA, HMC, kinetic
Langevin) samples it through ``prior_target()`` as for any other prior, and ``--steps 0``
gives the base sampler alone. ``T`` (``temperature``) is 1 for the model itself; the authors'
sampling scripts multiply ``E`` by 100 (an inverse temperature, sharper than ``Q``).

The model also has an observation model ``p(x | G(z)) = N(G(z), σ² I)`` so that posterior
inference (reconstruction, anomaly scores) works as for the other members of the family;
it plays no part in training (``lebm.methods.gebm``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import nn

from lebm import settings
from lebm.errors import ConfigError
from lebm.latent import LatentSpec
from lebm.likelihoods import build_likelihood
from lebm.metrics.likelihood import log_mean_exp
from lebm.models.base import INFERENCE, LatentModel, register_model
from lebm.models.config import CHAIN_ALIASES, ChainConfig, PrecisionConfig
from lebm.nets import (
    ACTIVATIONS,
    DATA_ENERGIES,
    IMAGE_GENERATORS,
    build_data_energy,
    build_generator,
)
from lebm.nets.flows import FLOWS, FlowBase
from lebm.priors import Prior


def _prior_chain() -> ChainConfig:
    """The latent sampler of a GEBM: 100 Langevin steps of size 0.1 from N(0, I)."""
    return ChainConfig(n_steps=100, step_size=0.1)


def _posterior_chain() -> ChainConfig:
    """Posterior inference (reconstruction): 20 Langevin steps of size 0.1."""
    return ChainConfig(n_steps=20, step_size=0.1)


@dataclass
class GEBMConfig:
    """Constructor arguments of ``GEBM``; saved as ``config.json``."""

    ALIASES: ClassVar[dict[str, tuple[str, ...]]] = CHAIN_ALIASES

    base: str = field(default="generator", metadata={
        "choices": ("generator", "flow"),
        "help": "generator: an implicit G(z); flow: a normalising flow (zuko) with a density, "
                "for vector data (the latent size is then the data's)"})
    flow: str = field(default="maf", metadata={"choices": FLOWS})
    flow_transforms: int = field(default=5, metadata={"min": 1})
    flow_hidden: tuple[int, ...] = field(default=(64, 64), metadata={"min": 1})
    flow_passes: int = field(default=0, metadata={
        "min": 0, "help": "0: fully autoregressive; 2: coupling layers (fast inverse)"})
    n_z: int = field(default=100, metadata={"min": 1, "help": "latent dimension"})
    generator: str = field(default="conv", metadata={"choices": IMAGE_GENERATORS})
    gen_widths: tuple[int, ...] = field(default=(256, 256), metadata={"min": 1})
    ngf: int = field(default=64, metadata={"min": 1, "help": "conv generator base width"})
    gen_activation: str = field(default="leaky_relu", metadata={"choices": ACTIVATIONS})
    gen_output: str = field(default="tanh", metadata={"choices": ("tanh", "identity")})
    energy_net: str = field(default="conv", metadata={
        "choices": DATA_ENERGIES, "help": "the data-space energy E(x): conv (images) or mlp"})
    ndf: int = field(default=64, metadata={"min": 1, "help": "conv energy base width"})
    energy_widths: tuple[int, ...] = field(default=(256, 256), metadata={
        "min": 1, "help": "mlp energy hidden widths"})
    energy_activation: str = field(default="leaky_relu", metadata={"choices": ACTIVATIONS})
    energy_spectral_norm: bool = field(default=False, metadata={
        "help": "spectral norm on the conv / mlp energy (sngan and resnet have it built in)"})
    energy_floor: float | None = field(default=None, metadata={
        "help": "cut E(x) off below at this value (the authors' energies: -10); none = off"})
    temperature: float = field(default=1.0, metadata={
        "gt": 0, "help": "T in the latent target N(0, I) exp(−T·E(G(z))); 1 = the model"})
    likelihood: str = field(default="gaussian", metadata={
        "choices": ("gaussian",), "help": "p(x | G(z)) for posterior inference"})
    sigma: float = field(default=0.3, metadata={
        "gt": 0, "help": "std of p(x | G(z)) for posterior inference (not used in training)"})
    prior_chain: ChainConfig = field(default_factory=_prior_chain)
    posterior_chain: ChainConfig = field(default_factory=_posterior_chain)
    inference: str = field(default="langevin", metadata={
        "choices": INFERENCE[:1], "help": "posterior z: the posterior chain from noise"})
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    data_shape: tuple[int, ...] = field(default=(), metadata={"internal": True})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GEBMConfig:
        cfg: GEBMConfig = settings.from_plain(cls, d)
        settings.check(cfg)
        return cfg

    def rules(self, label: str) -> None:
        if self.base == "flow" and self.data_shape and len(self.data_shape) != 1:
            raise ConfigError(f"{label}base=flow needs vector data (tables, 2-D toys), got "
                              f"examples of shape {tuple(self.data_shape)}")
        if self.base == "flow" and self.energy_net != "mlp":
            raise ConfigError(f"{label}base=flow works on vectors: set {label}energy_net=mlp")
        if self.prior_chain.init_std != 1.0:
            raise ConfigError(f"{label}prior_chain.init_std: the latent sampler starts at the "
                              "base N(0, I); leave it at 1")


class DataEnergyPrior(Prior):
    """``log p̃(z) = −T·E(G(z)) − ‖z‖²/2``: the base ``N(0, I)`` tilted by a data energy.

    ``f(z) = −T·E(G(z))`` is the negative energy of the library's convention. Holds the
    energy network ``energy`` (``E``, low on data) and the learned log-partition
    ``log_partition`` (``A ≈ log E_η[exp(−E(G(z)))]``, the KALE estimator's scalar); the
    base ``G`` is the model's generator, handed over by ``bind`` (not a sub-module: its
    weights are saved once, with the generator).
    """

    kind: ClassVar[str] = "gebm"
    capabilities: ClassVar[frozenset[str]] = frozenset({"data_energy"})

    def __init__(self, latent: LatentSpec, energy: nn.Module, temperature: float = 1.0
                 ) -> None:
        super().__init__(latent, 1.0)
        self.energy = energy
        self.temperature = float(temperature)
        self.log_partition = nn.Parameter(torch.zeros(()))
        self._base: Any = None

    def bind(self, base: Any) -> None:
        """Set the map ``z ↦ G(z)`` the energy is evaluated through."""
        self._base = base

    def data_energy(self, x: torch.Tensor) -> torch.Tensor:
        """``E(x)``, shape ``(batch,)`` (low on data)."""
        return self.energy(x)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z) = −T·E(G(z))``, shape ``(batch,)``."""
        if self._base is None:
            raise RuntimeError("DataEnergyPrior is not bound to a generator (GEBM binds it)")
        return -self.temperature * self.energy(self._base(z))


@register_model
class GEBM(LatentModel):
    """Base generator ``G`` with a data-space energy ``E``, sampled in latent space."""

    Config: ClassVar[type] = GEBMConfig
    config: GEBMConfig
    prior: DataEnergyPrior

    def __init__(self, config: GEBMConfig) -> None:
        settings.check(config)
        flow = config.base == "flow"
        n_z = int(config.data_shape[0]) if flow and config.data_shape else config.n_z
        super().__init__(config, LatentSpec((n_z,)))
        c = config
        self.likelihood = build_likelihood("gaussian", sigma=c.sigma)
        self.generator: nn.Module
        if flow:
            self.generator = FlowBase(n_z, c.flow, c.flow_transforms, c.flow_hidden,
                                      c.flow_passes or None)
        else:
            self.generator = build_generator(
                c.generator, self.latent, self.data_shape, widths=c.gen_widths, ngf=c.ngf,
                activation=c.gen_activation, output=c.gen_output)
        energy = build_data_energy(c.energy_net, self.data_shape, ndf=c.ndf,
                                   widths=c.energy_widths, activation=c.energy_activation,
                                   spectral_norm=c.energy_spectral_norm, floor=c.energy_floor)
        self.prior = DataEnergyPrior(self.latent, energy, c.temperature)
        self.prior.bind(self._base)
        self.encoder = None

    @property
    def has_density(self) -> bool:
        """Whether the base has a density (``base="flow"``): then ``log_likelihood`` works."""
        return self.config.base == "flow"

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                       n_partition: int = 100_000, batch_size: int = 10_000
                       ) -> dict[str, Any]:
        """``log q(x) = log g(x) − T·E(x) − log Z`` of a flow-based GEBM, per example.

        ``Z = E_{x'~G}[exp(−T·E(x'))]`` is estimated by Monte Carlo over ``n_partition`` base
        samples (the same for every example), with the delta-method standard error of
        ``log Ẑ``: ``sd(w) / (√N · mean(w))``, ``w = exp(−T·E(x'))``. Returns ``ll`` and
        ``base_ll`` (``log g(x)``) of shape ``(batch,)``, ``log_z`` and ``log_z_se``.
        """
        if not self.has_density:
            raise ValueError("log_likelihood needs a base with a density (model.base=flow); "
                             "for a generator base use lebm eval --metrics ll")
        self.check_data(x)
        T = self.prior.temperature
        v = []
        for start in range(0, n_partition, batch_size):
            z = self.prior.sample_base(min(batch_size, n_partition - start), generator)
            v.append(-T * self.prior.data_energy(self.generator(z)).double())
        log_z, log_z_se = log_mean_exp(torch.cat(v))
        base_ll = cast(Any, self.generator).log_prob(x)
        ll = base_ll - T * self.prior.data_energy(x) - float(log_z)
        return {"ll": ll, "base_ll": base_ll, "log_z": float(log_z), "log_z_se": float(log_z_se)}

    def _base(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)``: inside ``chain_mode`` the chains' copy of the generator."""
        return (self._chain_g or self.generator)(z)

    @torch.no_grad()
    def previews(self, stem: str | os.PathLike, *, n: int, seed: int, heldout: torch.Tensor,
                 data: torch.Tensor, title: str = "") -> list[Path]:
        """The pictures of every model (samples through the latent sampler, reconstructions)
        and, for images, ``{stem}_base.png``: the base generator alone on the same noise."""
        from lebm.viz import save_image_grid, save_scatter

        written = super().previews(stem, n=n, seed=seed, heldout=heldout, data=data,
                                   title=title)
        if len(self.data_shape) == 3:
            z0 = self.init_latent(n, torch.Generator(device=self.device).manual_seed(seed + 2))
            written.append(save_image_grid(self.decode(z0), f"{stem}_base.png"))
        elif self.data_shape == (2,):  # data, base, base + energy on the same noise
            gen = torch.Generator(device=self.device).manual_seed(seed + 5)
            z0 = self.init_latent(2000, gen)
            z, _ = self.sample_latent(2000, gen, z0=z0)
            written.append(save_scatter(
                {"data": data, "base G(z)": self.decode(z0), "GEBM": self.decode(z)},
                f"{stem}_base.png", title=title))
        return written
