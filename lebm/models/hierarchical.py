"""``HierarchicalEBM``: a multi-layer generator under a joint latent EBM prior.

    z_L ~ N(0, σ0²),  z_i | z_{i+1} ~ N(μ_i(z_{i+1}), σ_i²(z_{i+1})),  tilted by exp(Σ_i f_i(z_i)),
    x ~ p(x | g(z_1))

(with ``prior="layers"`` the tilt is off: the hierarchical ABP baseline)

(Cui, Wu & Han, CVPR 2023; REFERENCE §3). The layers are one flat latent laid out by
``LatentSpec(latent_sizes)``: every chain moves all layers jointly on the full log-density,
and everything but building the parts lives in ``LatentModel``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from lebm import settings
from lebm.errors import ConfigError
from lebm.latent import LatentSpec
from lebm.likelihoods import LIKELIHOODS, build_likelihood
from lebm.models.base import INFERENCE, ChainOverrides, LatentModel, register_model
from lebm.models.config import CHAIN_ALIASES, ChainConfig, PrecisionConfig
from lebm.nets import (
    ACTIVATIONS,
    ENCODERS,
    IMAGE_GENERATORS,
    BottomLayerGenerator,
    LadderGenerator,
    build_encoder,
    build_generator,
)
from lebm.priors import PRIORS, PriorSettings
from lebm.sampling import run_chain


def _prior_chain() -> ChainConfig:
    """The CVPR'23 prior chain: 60 Langevin steps of size 0.4 over all layers."""
    return ChainConfig(n_steps=60, step_size=0.4)


def _posterior_chain() -> ChainConfig:
    """The CVPR'23 posterior chain: 40 Langevin steps of size 0.1 over all layers."""
    return ChainConfig(n_steps=40, step_size=0.1)


@dataclass
class HierarchicalConfig:
    """Constructor arguments of ``HierarchicalEBM``; saved as ``config.json``."""

    ALIASES: ClassVar[dict[str, tuple[str, ...]]] = CHAIN_ALIASES

    latent_sizes: tuple[int, ...] = field(default=(16, 8), metadata={
        "min": 1, "help": "sizes of z_1 (read by the generator) … z_L (the top)"})
    prior: str = field(default="joint", metadata={
        "choices": ("joint", "layers", "ebm", "gaussian"),
        "help": "joint: per-layer energies tilt the Gaussian backbone (CVPR'23); layers: "
                "the backbone alone (the hierarchical ABP baseline); ebm: one energy on the "
                "concatenated layers over N(0, σ0² I) (ICCV'23, with generator=ladder); "
                "gaussian: N(0, σ0² I) alone"})
    generator: str = field(default="conv", metadata={
        "choices": (*IMAGE_GENERATORS, "ladder"),
        "help": "mlp / conv / conv-wide read z_1 only; ladder reads every layer top-down"})
    gen_widths: tuple[int, ...] = field(default=(256, 256), metadata={"min": 1})
    ngf: int = field(default=64, metadata={"min": 1, "help": "conv generator base width"})
    gen_activation: str = field(default="leaky_relu", metadata={"choices": ACTIVATIONS})
    gen_output: str = field(default="tanh", metadata={"choices": ("tanh", "identity")})
    energy_widths: tuple[int, ...] = field(default=(200, 200, 200), metadata={
        "min": 1, "help": "f_1's hidden widths"})
    upper_energy_widths: tuple[int, ...] = field(default=(100, 100), metadata={
        "min": 1, "help": "hidden widths of f_2 … f_L"})
    energy_activation: str = field(default="leaky_relu", metadata={"choices": ACTIVATIONS})
    energy_spectral_norm: bool = field(default=False, metadata={
        "help": "spectral normalisation on the energy layers (the ICCV'23 code)"})
    backbone_widths: tuple[int, ...] = field(default=(200, 200, 200), metadata={
        "min": 1, "help": "hidden widths of the conditionals p(z_i | z_{i+1})"})
    sigma0: float = field(default=1.0, metadata={"gt": 0, "help": "std of the top layer"})
    likelihood: str = field(default="gaussian", metadata={"choices": tuple(LIKELIHOODS)})
    sigma: float = field(default=0.3, metadata={"gt": 0, "help": "Gaussian observation std"})
    n_categories: int = field(default=0, metadata={"min": 0})
    prior_chain: ChainConfig = field(default_factory=_prior_chain)
    posterior_chain: ChainConfig = field(default_factory=_posterior_chain)
    encoder: str = field(default="none", metadata={
        "choices": ENCODERS, "help": "a Gaussian inference network q(z_1..L | x) over every "
                                    "layer (the variational variant)"})
    inference: str = field(default="langevin", metadata={
        "choices": INFERENCE,
        "help": "posterior z: the chain from noise, q's mean, or the chain from a q sample"})
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    data_shape: tuple[int, ...] = field(default=(), metadata={"internal": True})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HierarchicalConfig:
        cfg: HierarchicalConfig = settings.from_plain(cls, d)
        settings.check(cfg)
        return cfg

    def rules(self, label: str) -> None:
        if len(self.latent_sizes) < 2:
            raise ConfigError(f"{label}latent_sizes: a hierarchical model needs at least two "
                              f"layers, got {self.latent_sizes}")
        if self.prior in ("ebm", "gaussian") and self.generator != "ladder":
            raise ConfigError(f"{label}prior={self.prior} has no links between the layers: "
                              f"only {label}generator=ladder reads them all (the ICCV'23 "
                              "model); with mlp/conv/conv-wide use prior=joint or layers")
        if self.inference != "langevin" and self.encoder == "none":
            raise ConfigError(f"{label}inference={self.inference} needs an encoder (set "
                              f"{label}encoder=conv or {label}encoder=mlp)")
        if self.likelihood != "gaussian" and self.gen_output != "identity":
            raise ConfigError(f"{label}likelihood={self.likelihood}: the generator outputs "
                              f"logits; set {label}gen_output=identity")


@register_model
class HierarchicalEBM(LatentModel):
    """Generator of ``z_1`` under a joint EBM prior over ``z_1 … z_L``."""

    Config: ClassVar[Any] = HierarchicalConfig
    config: HierarchicalConfig

    def __init__(self, config: HierarchicalConfig) -> None:
        settings.check(config)
        latent = LatentSpec(config.latent_sizes)
        super().__init__(config, latent)
        c = config
        likelihood = build_likelihood(c.likelihood, sigma=c.sigma, n_categories=c.n_categories)
        out_shape = likelihood.output_shape(self.data_shape)
        if c.generator == "ladder":
            self.generator = LadderGenerator(latent, out_shape, ngf=c.ngf, widths=c.gen_widths,
                                             activation=c.gen_activation, output=c.gen_output)
        else:
            net = build_generator(c.generator, LatentSpec(c.latent_sizes[:1]), out_shape,
                                  widths=c.gen_widths, ngf=c.ngf, activation=c.gen_activation,
                                  output=c.gen_output)
            self.generator = BottomLayerGenerator(latent, net)
        self.prior = PRIORS[c.prior].build(latent, PriorSettings(
            sigma0=c.sigma0, energy_widths=c.energy_widths,
            upper_energy_widths=c.upper_energy_widths, energy_activation=c.energy_activation,
            energy_spectral_norm=c.energy_spectral_norm, backbone_widths=c.backbone_widths))
        self.likelihood = likelihood
        self.encoder = build_encoder(c.encoder, self.data_shape, latent,
                                     widths=c.gen_widths[::-1], ngf=c.ngf,
                                     activation=c.gen_activation)

    def resample_layer(self, z: torch.Tensor, level: int,
                       generator: torch.Generator | None = None,
                       **overrides: ChainOverrides) -> torch.Tensor:
        """``z`` with layer ``level`` (0-based; 0 is ``z_1``) redrawn and the *noise* of every
        other layer kept: the papers' layer-semantics figure, what one layer encodes.

        In the base's whitened coordinates ε (``prior.to_noise``: the backbone's noise, or
        ``z / σ0`` for the ICCV'23 model's ``N(0, σ0² I)``) the prior is
        ``∝ exp(f(z(ε))) N(ε; 0, I)``, so ``ε_level`` given the other ε is drawn from
        ``∝ exp(f(z(ε))) N(ε_level; 0, I)``: exactly by ``N(0, I)`` for a prior without
        energy, else by the prior chain's kernel (``overrides`` as in ``sample_latent``) over
        ``ε_level`` only, from ``N(0, I)``. The layers above keep their values; with a
        backbone those below keep their noise and follow the new layer through ``μ_i, σ_i``.
        """
        sizes = self.latent.sizes
        if not 0 <= level < len(sizes):
            raise ValueError(f"level must be in 0..{len(sizes) - 1}, got {level}")
        if z.dim() != 2 or z.shape[1] != self.latent.dim:
            raise ValueError(f"z must be (n, {self.latent.dim}), got {tuple(z.shape)}")
        prior = self.prior
        with torch.no_grad():
            eps = list(self.latent.split(prior.to_noise(z.detach())))
        u0 = torch.randn(z.shape[0], sizes[level], generator=generator, device=z.device)
        if prior.needs_chain:
            def target(u: torch.Tensor) -> torch.Tensor:
                e = self.latent.cat([u if i == level else v for i, v in enumerate(eps)])
                return prior.neg_energy(prior.from_noise(e)) - 0.5 * u.pow(2).sum(1)

            chain = self.chain("prior", **overrides)
            with self.chain_mode():
                u0, _ = run_chain(chain.make_kernel(), target, u0, chain.n_steps,
                                  generator=generator)
        eps[level] = u0.detach()
        with torch.no_grad():
            return prior.from_noise(self.latent.cat(eps))
