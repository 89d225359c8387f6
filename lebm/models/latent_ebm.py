"""``LatentEBM``: one latent vector, a generator, a (learned) prior and a likelihood.

    z ~ p(z) ∝ exp(f(z)) N(0, σ0² I),      x ~ p(x | g(z))
    (Gaussian: x = g(z) + ε, ε ~ N(0, σ² I))

``f`` is the negative energy (REFERENCE §0.1). With ``prior="gaussian"`` (``f ≡ 0``) the same
class is the ABP and VAE baselines' model; with ``prior="symbol"`` the SV-EBM's. Everything
but building the parts lives in ``LatentModel``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from lebm import settings
from lebm.errors import ConfigError
from lebm.latent import LatentSpec
from lebm.likelihoods import LIKELIHOODS, build_likelihood
from lebm.models.base import INFERENCE, LatentModel, register_model
from lebm.models.config import (
    CHAIN_ALIASES,
    ChainConfig,
    PrecisionConfig,
    posterior_chain_default,
    prior_chain_default,
)
from lebm.nets import ACTIVATIONS, ENCODERS, GENERATORS, build_encoder, build_generator
from lebm.priors import PRIORS, PriorSettings, build_prior


@dataclass
class ModelConfig:
    """Constructor arguments of ``LatentEBM``; saved as ``config.json``.

    ``metadata`` drives validation of ``--set`` values (see ``lebm.settings``); the old flat
    chain and precision keys are accepted as ``ALIASES``.
    """

    ALIASES: ClassVar[dict[str, tuple[str, ...]]] = CHAIN_ALIASES

    n_z: int = field(default=100, metadata={"min": 1, "help": "latent dimension"})
    generator: str = field(default="conv", metadata={"choices": GENERATORS})
    gen_widths: tuple[int, ...] = field(default=(256, 256), metadata={"min": 1})
    ngf: int = field(default=64, metadata={"min": 1, "help": "conv generator base width"})
    gen_activation: str = field(default="leaky_relu", metadata={"choices": ACTIVATIONS})
    gen_output: str = field(default="tanh", metadata={"choices": ("tanh", "identity")})
    prior: str = field(default="ebm", metadata={
        "choices": tuple(PRIORS),
        "help": "symbol = symbol-vector coupling: K logits, marginal F = logsumexp"})
    n_classes: int = field(default=0, metadata={"min": 0,
                                                "help": "K symbols of prior=symbol"})
    energy_widths: tuple[int, ...] = field(default=(200, 200), metadata={"min": 1})
    energy_activation: str = field(default="gelu", metadata={"choices": ACTIVATIONS})
    energy_spectral_norm: bool = False
    max_stages: int = field(default=4, metadata={
        "min": 1, "help": "prior=nce: ratio networks (stages) at most"})
    sigma0: float = field(default=1.0, metadata={"gt": 0, "help": "reference N(0, σ0²) std"})
    likelihood: str = field(default="gaussian", metadata={
        "choices": tuple(LIKELIHOODS),
        "help": "bernoulli: binary data (±1), g outputs logits; categorical: token ids"})
    sigma: float = field(default=0.3, metadata={"gt": 0, "help": "Gaussian observation std"})
    n_categories: int = field(default=0, metadata={
        "min": 0, "help": "ids of likelihood=categorical (set from the data's vocabulary)"})
    embed_dim: int = field(default=512, metadata={"min": 1, "help": "gru nets: word embedding"})
    hidden_dim: int = field(default=512, metadata={"min": 1, "help": "gru nets: GRU state"})
    dropout: float = field(default=0.3, metadata={
        "min": 0.0, "max": 0.99, "help": "gru nets: dropout on embeddings and outputs"})
    prior_chain: ChainConfig = field(default_factory=prior_chain_default)
    posterior_chain: ChainConfig = field(default_factory=posterior_chain_default)
    encoder: str = field(default="none", metadata={
        "choices": ENCODERS, "help": "amortised Gaussian q(z|x) (VAE; optional otherwise)"})
    inference: str = field(default="langevin", metadata={
        "choices": INFERENCE,
        "help": "posterior z: a chain from noise, q's mean, or a chain from a q sample"})
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    data_shape: tuple[int, ...] = field(default=(), metadata={"internal": True})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """From a plain (JSON) dict, old flat keys accepted; checked."""
        cfg: ModelConfig = settings.from_plain(cls, d)
        settings.check(cfg)
        return cfg

    def rules(self, label: str) -> None:
        """Cross-field rules (``lebm.settings.check`` calls them)."""
        if self.inference != "langevin" and self.encoder == "none":
            raise ConfigError(f"{label}inference={self.inference} needs an encoder (set "
                              f"{label}encoder=conv or {label}encoder=mlp)")
        if self.prior == "symbol" and self.n_classes < 2:
            raise ConfigError(f"{label}prior=symbol needs {label}n_classes >= 2, "
                              f"got {self.n_classes}")
        if self.generator == "gru" and self.likelihood != "categorical":
            raise ConfigError(f"{label}generator=gru decodes sentences: it needs "
                              f"{label}likelihood=categorical")
        if self.encoder == "gru" and self.likelihood != "categorical":
            raise ConfigError(f"{label}encoder=gru reads sentences: it needs "
                              f"{label}likelihood=categorical")
        if (self.likelihood != "gaussian" and self.gen_output != "identity"
                and self.generator != "gru"):
            raise ConfigError(f"{label}likelihood={self.likelihood}: the generator outputs "
                              f"logits; set {label}gen_output=identity")
        if self.likelihood == "categorical" and self.n_categories == 1:
            raise ConfigError(f"{label}likelihood=categorical needs {label}n_categories >= 2 "
                              f"(0: from the data's vocabulary)")
        if self.likelihood == "categorical" and self.encoder not in ("none", "gru"):
            raise ConfigError(f"{label}encoder={self.encoder} cannot read token ids; use "
                              f"{label}encoder=gru (or none) with likelihood=categorical")


@register_model
class LatentEBM(LatentModel):
    """Generator ``g`` with a latent EBM prior (or a Gaussian / symbol-vector prior)."""

    Config: ClassVar[type] = ModelConfig
    config: ModelConfig

    def __init__(self, config: ModelConfig) -> None:
        settings.check(config)
        super().__init__(config, LatentSpec((config.n_z,)))
        c = config
        likelihood = build_likelihood(c.likelihood, sigma=c.sigma, n_categories=c.n_categories)
        # built in this order (generator, prior, encoder): the parameter initialisation
        # draws from the global RNG in this order
        self.generator = build_generator(
            c.generator, self.latent, likelihood.output_shape(self.data_shape),
            widths=c.gen_widths, ngf=c.ngf, activation=c.gen_activation, output=c.gen_output,
            embed_dim=c.embed_dim, hidden_dim=c.hidden_dim, dropout=c.dropout)
        self.prior = build_prior(c.prior, self.latent, PriorSettings(
            sigma0=c.sigma0, n_classes=c.n_classes, energy_widths=c.energy_widths,
            energy_activation=c.energy_activation,
            energy_spectral_norm=c.energy_spectral_norm, max_stages=c.max_stages))
        self.likelihood = likelihood
        self.encoder = build_encoder(c.encoder, self.data_shape, self.latent,
                                     widths=c.gen_widths[::-1], ngf=c.ngf,
                                     activation=c.gen_activation, vocab_size=c.n_categories,
                                     embed_dim=c.embed_dim, hidden_dim=c.hidden_dim,
                                     dropout=c.dropout)
