"""Latent priors: unnormalised log-densities ``log p̃(z)`` on the flat latent ``z``.

Sign convention (REFERENCE §0.1): ``f`` is the **negative energy**, and

    log p̃(z) = f(z) − ‖z‖² / (2 σ0²),      p(z) = exp(f(z)) N(z; 0, σ0² I) / Z.

Every prior is an exponential tilt of the reference ``N(0, σ0² I)`` and has the protocol of
``Prior``: ``log_density``, ``neg_energy`` (``f``), ``base_log_density`` (the reference's
``−‖z‖²/(2σ0²)``), ``sample_base`` (exact reference draws), and declares what it can do
instead of being recognised by its class:

* ``needs_chain``  ``False`` when ``sample_base`` is already an exact prior sample (``f ≡ 0``);
* ``capabilities`` e.g. ``{"gaussian"}`` (closed-form KL against it), ``{"energy"}`` (a
  learned ``f``), ``"symbols"`` (``n_classes`` logits ``f_k``: ``logits(z)`` gives
  ``p(y|z)`` and ``conditional(y)`` the class-conditional chain target).

``PRIORS`` maps a config name to a class; ``build_prior`` builds any of them from one
``PriorSettings``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from lebm.latent import LatentSpec
from lebm.nets import ConditionalGaussian, EnergyMLP

LogDensity = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class PriorSettings:
    """What any registered prior may need to be built (each takes what it uses)."""

    sigma0: float = 1.0
    n_classes: int = 0
    energy_widths: tuple[int, ...] = (200, 200)
    energy_activation: str = "gelu"
    energy_spectral_norm: bool = False
    max_stages: int = 4
    upper_energy_widths: tuple[int, ...] = (100, 100)
    backbone_widths: tuple[int, ...] = (200, 200, 200)


class Prior(nn.Module):
    """Base of every prior: the reference ``N(0, σ0² I)`` and the protocol's defaults.

    Subclasses define ``neg_energy`` (``f``) and ``build``; ``log_density`` is
    ``f(z) + base_log_density(z)``.
    """

    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset()
    needs_chain: ClassVar[bool] = True
    _anchor: torch.Tensor

    def __init__(self, latent: LatentSpec, sigma0: float = 1.0) -> None:
        super().__init__()
        if not sigma0 > 0:
            raise ValueError(f"sigma0 must be > 0, got {sigma0}")
        self.latent, self.sigma0 = latent, float(sigma0)
        # follows the module across devices (sample_base draws there); not saved
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> Prior:
        raise NotImplementedError

    @property
    def n_classes(self) -> int:
        """Number of symbols ``K`` (0: no symbols)."""
        return 0

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z)``, shape ``(batch,)``."""
        raise NotImplementedError

    def base_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``−‖z‖²/(2σ0²)``, shape ``(batch,)``: the reference ``N(0, σ0² I)`` up to its
        normaliser ``−(d/2) log(2πσ0²)`` (``base_log_normalizer``)."""
        return -z.flatten(1).pow(2).sum(1) / (2 * self.sigma0**2)

    def base_log_normalizer(self) -> float:
        """``−(d/2) log(2πσ0²)``: adds to ``base_log_density`` to give ``log N(z; 0, σ0² I)``."""
        return -0.5 * self.latent.dim * math.log(2 * math.pi * self.sigma0**2)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised ``log p̃(z) = f(z) − ‖z‖²/(2σ0²)``, shape ``(batch,)``."""
        return self.neg_energy(z) + self.base_log_density(z)

    def sample_base(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Exact draws ``σ0 ε`` of the reference ``N(0, σ0² I)``, shape ``(n, dim)``."""
        return self.sigma0 * torch.randn(n, self.latent.dim, generator=generator,
                                         device=self._anchor.device)

    def to_noise(self, z: torch.Tensor) -> torch.Tensor:
        """The whitened coordinates in which the base is ``N(0, I)``: ``z / σ0`` here."""
        return z / self.sigma0

    def from_noise(self, eps: torch.Tensor) -> torch.Tensor:
        """``z`` from its whitened coordinates (the inverse of ``to_noise``), differentiable
        in ``eps``: ``σ0 ε`` here."""
        return self.sigma0 * eps

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``(f_1(z), …, f_K(z))`` of a prior with symbols, shape ``(batch, K)``."""
        raise ValueError("this prior has no symbols (use a symbol-vector prior, prior=symbol)")

    def conditional(self, y: int) -> LogDensity:
        """``z ↦ log p̃(z | y)``, the chain target of symbol ``y``."""
        raise ValueError("sampling a class needs a symbol-vector prior (prior=symbol)")


class GaussianPrior(Prior):
    """``p(z) = N(0, σ0² I)``: ``log p̃(z) = −‖z‖²/(2σ0²)``, ``f ≡ 0``. No parameters; its
    ``sample_base`` is an exact prior sample (the ABP and VAE baselines)."""

    kind: ClassVar[str] = "gaussian"
    capabilities: ClassVar[frozenset[str]] = frozenset({"gaussian"})
    needs_chain: ClassVar[bool] = False

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> GaussianPrior:
        return cls(latent, s.sigma0)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z) = 0``, shape ``(batch,)``."""
        return z.new_zeros(z.shape[0])

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``log p̃(z) = −‖z‖²/(2σ0²)``, shape ``(batch,)``."""
        return self.base_log_density(z)


class EBMPrior(Prior):
    """Exponentially tilted Gaussian ``p(z) ∝ exp(f(z)) N(0, σ0² I)`` (REFERENCE §0.1).

    ``energy_net`` maps ``(batch, dim)`` to ``(batch,)`` and is the negative energy ``f``.
    """

    kind: ClassVar[str] = "ebm"
    capabilities: ClassVar[frozenset[str]] = frozenset({"energy"})
    needs_chain: ClassVar[bool] = True

    def __init__(self, energy_net: nn.Module, latent: LatentSpec, sigma0: float = 1.0) -> None:
        super().__init__(latent, sigma0)
        self.energy_net = energy_net

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> EBMPrior:
        net = EnergyMLP(latent.dim, s.energy_widths, s.energy_activation, 1,
                        s.energy_spectral_norm)
        return cls(net, latent, s.sigma0)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z)``, shape ``(batch,)``."""
        return self.energy_net(z)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """``log p̃(z) = f(z) − ‖z‖²/(2σ0²)``, shape ``(batch,)``."""
        return self.neg_energy(z) + self.base_log_density(z)


class SymbolVectorPrior(EBMPrior):
    """Symbol-vector coupling (REFERENCE §2.1): ``energy_net`` outputs ``K`` logits ``f_k(z)``.

        p(y, z) ∝ exp(f_y(z)) N(z; 0, σ0² I)              (y one of K symbols)
        p(z)    ∝ exp(F(z)) N(z; 0, σ0² I),  F(z) = logsumexp_k f_k(z)
        p(y|z)  = softmax_k f_k(z)

    ``neg_energy`` is the marginal's ``F``, so every chain and loss written for a tilted
    prior works unchanged on the marginal prior.
    """

    kind: ClassVar[str] = "symbol"
    capabilities: ClassVar[frozenset[str]] = frozenset({"energy", "symbols"})

    def __init__(self, energy_net: nn.Module, latent: LatentSpec, n_classes: int,
                 sigma0: float = 1.0) -> None:
        super().__init__(energy_net, latent, sigma0)
        if n_classes < 2:
            raise ValueError(f"a symbol-vector prior needs n_classes >= 2, got {n_classes}")
        self._n_classes = int(n_classes)

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> SymbolVectorPrior:
        if s.n_classes < 2:
            raise ValueError(f"prior=symbol needs n_classes >= 2, got {s.n_classes}")
        net = EnergyMLP(latent.dim, s.energy_widths, s.energy_activation, s.n_classes,
                        s.energy_spectral_norm)
        return cls(net, latent, s.n_classes, s.sigma0)

    @property
    def n_classes(self) -> int:
        return self._n_classes

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z) = (f_1(z), …, f_K(z))``, shape ``(batch, K)``."""
        return self.energy_net(z)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``F(z) = logsumexp_k f_k(z)``, shape ``(batch,)``."""
        return torch.logsumexp(self.logits(z), dim=1)

    def class_log_density(self, z: torch.Tensor, y: torch.Tensor | int) -> torch.Tensor:
        """``log p̃(z | y) = f_y(z) − ‖z‖²/(2σ0²)`` (unnormalised), shape ``(batch,)``."""
        logits = self.logits(z)
        y = torch.as_tensor(y, device=z.device).expand(z.shape[0])
        return logits.gather(1, y[:, None]).squeeze(1) + self.base_log_density(z)

    def conditional(self, y: int) -> LogDensity:
        if not 0 <= y < self.n_classes:
            raise ValueError(f"class must be in 0..{self.n_classes - 1}, got {y}")
        return lambda z: self.class_log_density(z, y)


class ProductOfRatiosPrior(Prior):
    """The multi-stage density-ratio prior (Xiao & Han 2022; REFERENCE §4)::

        p(z) ∝ N(z; 0, σ0² I) · exp(Σ_{k < S} r_k(z)),     f = Σ_k r_k

    ``r_k`` is stage ``k``'s log density ratio, learned by a classifier (``methods/nce.py``);
    ``S`` stages are active (a buffer saved with the weights, so ``lebm.load`` rebuilds
    the product). All ``max_stages`` networks exist from the start; a stage's last layer
    starts at zero, so starting a stage leaves the prior unchanged. ``base_of_stage(k)`` is
    the prior of the first ``k`` stages, the distribution stage ``k`` is trained against.
    """

    kind: ClassVar[str] = "nce"
    capabilities: ClassVar[frozenset[str]] = frozenset({"energy", "stages"})
    n_active: torch.Tensor

    def __init__(self, ratios: Sequence[nn.Module], latent: LatentSpec,
                 sigma0: float = 1.0) -> None:
        super().__init__(latent, sigma0)
        if not ratios:
            raise ValueError("a product-of-ratios prior needs at least one stage")
        self.ratios = nn.ModuleList(ratios)
        self.register_buffer("n_active", torch.ones((), dtype=torch.int64))

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> ProductOfRatiosPrior:
        if s.max_stages < 1:
            raise ValueError(f"prior=nce needs max_stages >= 1, got {s.max_stages}")
        ratios: list[nn.Module] = []
        for _ in range(s.max_stages):
            net = EnergyMLP(latent.dim, s.energy_widths, s.energy_activation, 1,
                            s.energy_spectral_norm)
            if not s.energy_spectral_norm:  # r_k ≡ 0 until trained (a zero matrix has no
                with torch.no_grad():        # spectral normalisation: keep its init then)
                    for p in net.net[-1].parameters():
                        p.zero_()
            ratios.append(net)
        return cls(ratios, latent, s.sigma0)

    @property
    def max_stages(self) -> int:
        return len(self.ratios)

    @property
    def stages(self) -> int:
        """``S``, the number of active stages."""
        return int(self.n_active)

    def start_stage(self) -> int:
        """Activate the next stage (its ratio starts at zero); returns its index."""
        if self.stages >= self.max_stages:
            raise ValueError(f"all {self.max_stages} stages are active")
        self.n_active.add_(1)
        return self.stages - 1

    def ratio(self, k: int, z: torch.Tensor) -> torch.Tensor:
        """``r_k(z)``, shape ``(batch,)``."""
        out: torch.Tensor = self.ratios[k](z)
        return out

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z) = Σ_{k < S} r_k(z)``, shape ``(batch,)``."""
        return self.stage_sum(z, self.stages)

    def stage_sum(self, z: torch.Tensor, k: int) -> torch.Tensor:
        """``Σ_{j < k} r_j(z)``: the tilt of the first ``k`` stages."""
        total = z.new_zeros(z.shape[0])
        for j in range(k):
            total = total + self.ratio(j, z)
        return total

    def base_of_stage(self, k: int) -> LogDensity:
        """``log p̃_k(z) = Σ_{j<k} r_j(z) − ‖z‖²/(2σ0²)``: what stage ``k`` is compared with."""
        return lambda z: self.stage_sum(z, k) + self.base_log_density(z)


class LayeredGaussianPrior(Prior):
    """The Gaussian backbone of a multi-layer generator (REFERENCE §3.1), as a prior::

        p(z_1..L) = Π_{i<L} N(z_i; μ_i(z_{i+1}), σ_i²(z_{i+1})) · N(z_L; 0, σ0²)

    with the conditionals learned (``ConditionalGaussian``). It is normalised and sampled
    ancestrally, so it needs no prior chain: the hierarchical ABP baseline, and the base of
    ``JointLayerPrior``.
    """

    kind: ClassVar[str] = "layers"
    capabilities: ClassVar[frozenset[str]] = frozenset({"layers"})
    needs_chain: ClassVar[bool] = False

    def __init__(self, conditionals: Sequence[nn.Module], latent: LatentSpec,
                 sigma0: float = 1.0) -> None:
        super().__init__(latent, sigma0)
        if latent.n_layers < 2 or len(conditionals) != latent.n_layers - 1:
            raise ValueError(f"a layered prior over {latent.n_layers} layers needs at least two "
                             f"layers and {latent.n_layers - 1} conditionals, got "
                             f"{len(conditionals)}")
        self.conditionals = nn.ModuleList(conditionals)

    @staticmethod
    def build_conditionals(latent: LatentSpec, s: PriorSettings) -> list[nn.Module]:
        """``p(z_i | z_{i+1})`` for ``i = 1 … L−1``."""
        if latent.n_layers < 2:
            raise ValueError("a layered prior needs at least two latent layers")
        return [ConditionalGaussian(latent.sizes[i + 1], latent.sizes[i], s.backbone_widths,
                                    s.energy_activation) for i in range(latent.n_layers - 1)]

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> LayeredGaussianPrior:
        return cls(cls.build_conditionals(latent, s), latent, s.sigma0)

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``f ≡ 0``, shape ``(batch,)``."""
        return z.new_zeros(z.shape[0])

    def conditional_log_probs(self, z: torch.Tensor) -> list[torch.Tensor]:
        """``[log N(z_i; μ_i(z_{i+1}), σ_i²)]`` for ``i = 1 … L−1``, each ``(batch,)``."""
        zs = self.latent.split(z)
        out = []
        for i, cond in enumerate(self.conditionals):
            mu, sigma = cond(zs[i + 1])
            out.append(_gaussian_log_prob(zs[i], mu, sigma))
        return out

    def base_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """The backbone's normalised log-density ``Σ_{i<L} log N(z_i | z_{i+1}) +
        log N(z_L; 0, σ0²)``, shape ``(batch,)``."""
        top = self.latent.split(z)[-1]
        total = _gaussian_log_prob(top, torch.zeros_like(top), torch.full_like(top, self.sigma0))
        for term in self.conditional_log_probs(z):
            total = total + term
        return total

    def base_log_normalizer(self) -> float:
        return 0.0

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        return self.base_log_density(z)

    @torch.no_grad()
    def sample_base(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral draws: ``z_L ~ N(0, σ0²)``, then ``z_i ~ p(z_i | z_{i+1})`` downwards
        (``from_noise`` of standard normal noise, drawn top layer first)."""
        sizes = self.latent.sizes
        noise = {i: torch.randn(n, sizes[i], generator=generator, device=self._anchor.device)
                 for i in reversed(range(len(sizes)))}
        return self.from_noise(self.latent.cat([noise[i] for i in range(len(sizes))]))

    def to_noise(self, z: torch.Tensor) -> torch.Tensor:
        """The whitened noise of ``z``: ``ε_L = z_L / σ0`` and ``ε_i = (z_i − μ_i(z_{i+1})) /
        σ_i(z_{i+1})``, flat like ``z``. The backbone is ``N(0, I)`` in these coordinates."""
        zs = self.latent.split(z)
        eps = []
        for i, cond in enumerate(self.conditionals):
            mu, sigma = cond(zs[i + 1])
            eps.append((zs[i] - mu) / sigma)
        return self.latent.cat([*eps, zs[-1] / self.sigma0])

    def from_noise(self, eps: torch.Tensor) -> torch.Tensor:
        """``z`` from its whitened noise (the inverse of ``to_noise``), differentiable in
        ``eps``: ``z_L = σ0 ε_L``, then ``z_i = μ_i(z_{i+1}) + σ_i(z_{i+1}) ε_i`` downwards."""
        es = self.latent.split(eps)
        layers: list[torch.Tensor] = [es[-1] * self.sigma0]
        for i in range(len(es) - 2, -1, -1):
            mu, sigma = self.conditionals[i](layers[0])
            layers.insert(0, mu + sigma * es[i])
        return self.latent.cat(layers)


class JointLayerPrior(LayeredGaussianPrior):
    """A joint EBM prior over latent layers ``z_1 … z_L`` (Cui, Wu & Han 2023; REFERENCE §3.1)::

        p(z_1..L) ∝ exp(Σ_i f_i(z_i)) · Π_{i<L} N(z_i; μ_i(z_{i+1}), σ_i²(z_{i+1})) · N(z_L; 0, σ0²)

    one energy per layer (``f_i`` the negative energy) tilting the learned Gaussian backbone
    (``LayeredGaussianPrior``). The backbone is the base: ``base_log_density`` is its
    *normalised* log-density (``base_log_normalizer`` is 0) and ``sample_base`` draws it
    ancestrally, so ``log Z`` by AIS and every chain work as for the other priors.
    """

    kind: ClassVar[str] = "joint"
    capabilities: ClassVar[frozenset[str]] = frozenset({"energy", "layers"})
    needs_chain: ClassVar[bool] = True

    def __init__(self, energies: Sequence[nn.Module], conditionals: Sequence[nn.Module],
                 latent: LatentSpec, sigma0: float = 1.0) -> None:
        super().__init__(conditionals, latent, sigma0)
        if len(energies) != latent.n_layers:
            raise ValueError(f"a joint prior over {latent.n_layers} layers needs "
                             f"{latent.n_layers} energies, got {len(energies)}")
        self.energies = nn.ModuleList(energies)

    @classmethod
    def build(cls, latent: LatentSpec, s: PriorSettings) -> JointLayerPrior:
        energies: list[nn.Module] = [
            EnergyMLP(d, s.energy_widths if i == 0 else s.upper_energy_widths,
                      s.energy_activation, 1, s.energy_spectral_norm)
            for i, d in enumerate(latent.sizes)]
        return cls(energies, cls.build_conditionals(latent, s), latent, s.sigma0)

    def layer_energies(self, z: torch.Tensor) -> list[torch.Tensor]:
        """``[f_1(z_1), …, f_L(z_L)]``, each ``(batch,)``."""
        return [f(zi) for f, zi in zip(self.energies, self.latent.split(z))]

    def neg_energy(self, z: torch.Tensor) -> torch.Tensor:
        """``Σ_i f_i(z_i)``, shape ``(batch,)``."""
        return torch.stack(self.layer_energies(z)).sum(0)

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        return self.neg_energy(z) + self.base_log_density(z)


def _gaussian_log_prob(x: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``log N(x; μ, diag σ²)`` summed over the last dimension."""
    return (-0.5 * ((x - mu) / sigma).pow(2) - sigma.log()
            - 0.5 * math.log(2 * math.pi)).sum(-1)


PRIORS: dict[str, type[Prior]] = {"gaussian": GaussianPrior, "ebm": EBMPrior,
                                  "symbol": SymbolVectorPrior, "nce": ProductOfRatiosPrior,
                                  "joint": JointLayerPrior, "layers": LayeredGaussianPrior}


def build_prior(kind: str, latent: LatentSpec, settings: PriorSettings) -> Prior:
    """The prior registered as ``kind``; ``ValueError`` for an unknown kind or bad settings."""
    if kind not in PRIORS:
        raise ValueError(f"unknown prior {kind!r}; choose one of {', '.join(PRIORS)}")
    return PRIORS[kind].build(latent, settings)


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor, sigma0: float) -> torch.Tensor:
    """``KL(N(μ_j, e^{logvar_j}) ‖ N(0, σ0²))`` for every latent dimension, shape ``(batch, dim)``:
    ``½ ((e^{logvar} + μ²)/σ0² − 1 − logvar + log σ0²)``."""
    s0 = sigma0 * sigma0
    return 0.5 * ((logvar.exp() + mu.pow(2)) / s0 - 1 - logvar + math.log(s0))
