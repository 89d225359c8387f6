"""KALE: the estimator of generalised EBMs (Arbel, Zhou & Gretton, ICLR 2021; REFERENCE §5).

The energy ``E`` (low on data) and a scalar ``A`` (the log-partition) minimise::

    L(E, A) = mean_data[E(x) + A] + mean_{z~η}[exp(−E(G(z)) − A)] − 1  +  λ·GP(E)

whose optimum is ``exp(−E − A) = dP/dG`` (so ``exp(−E) G`` is the data distribution when the
base cannot reach it), with ``A* = log E_η[exp(−E(G(z)))]``; ``−L`` at the optimum is the
KALE lower bound on ``KL(P ‖ G)``. ``GP`` is the mean squared gradient norm ``‖∇_x E‖²`` at
random interpolates of data and base samples (the authors' ``gradient`` penalty, λ = 1).
``A`` starts at a Monte-Carlo log-mean-exp of ``−E(G(z))`` over ``partition_init_batches``
base batches and has its own optimiser. The base minimises the KALE estimate with the
mini-batch partition ``Â = log mean_z exp(−E(G(z)))``::

    L(G) = −mean_data[E(x)] − Â

(its gradient moves ``G(z)`` toward low energy, weighted by ``softmax(−E(G(z)))``).
Alternation: ``energy_steps_init`` energy steps first and again before every
``energy_init_every``-th base step, otherwise ``energy_steps`` energy steps per base step;
each step of the Trainer is one update of one side on one batch (the authors' counter).
Optionally every energy gradient ``g`` is replaced by ``2g/(1 + g²)`` and ``A``'s by
``g/(1 − g)`` (``grad_transform``, the authors' "gradient clipping").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import torch

from lebm.errors import ConfigError
from lebm.methods.base import Batch, Method, OptimizerSpec, Preset, StepOutput
from lebm.methods.lebm import BASE_PRESETS, MNIST_MODEL
from lebm.models import GEBM
from lebm.sampling import frozen


@dataclass
class KALEConfig:
    """Optimisation and alternation of the KALE estimator."""

    lr_e: float = field(default=1e-4, metadata={"gt": 0, "help": "the energy E"})
    lr_g: float = field(default=1e-4, metadata={"gt": 0, "help": "the base generator G"})
    lr_a: float = field(default=1e-4, metadata={"gt": 0, "help": "the log-partition A"})
    beta1: float = field(default=0.5, metadata={"min": 0, "lt": 1})
    beta2: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    lr_decay: float = field(default=1.0, metadata={"gt": 0, "max": 1,
                                                   "help": "LR factor per epoch"})
    penalty: float = field(default=1.0, metadata={
        "min": 0, "help": "λ of the gradient penalty E‖∇_x E(x̂)‖² (0 = off)"})
    grad_transform: bool = field(default=False, metadata={
        "help": "energy gradients g -> 2g/(1+g²), A's g -> g/(1-g)"})
    energy_steps: int = field(default=5, metadata={
        "min": 1, "help": "energy steps per base step"})
    energy_steps_init: int = field(default=100, metadata={
        "min": 0, "help": "energy steps before the first base step and every "
                          "energy_init_every base steps"})
    energy_init_every: int = field(default=500, metadata={"min": 1})
    partition_init_batches: int = field(default=100, metadata={
        "min": 0, "help": "base batches of the Monte-Carlo initialisation of A (0 = start at 0)"})
    base_loss: str = field(default="kale", metadata={
        "choices": ("kale", "mle"),
        "help": "the base's objective: the KALE estimate, or (model.base=flow) its own "
                "maximum likelihood −mean log g(x)"})
    base_batch_factor: int = field(default=1, metadata={
        "min": 1, "help": "base samples per data example in each step"})


def kale_energy_loss(e_data: torch.Tensor, e_base: torch.Tensor, log_partition: torch.Tensor
                     ) -> torch.Tensor:
    """``mean(E(x) + A) + mean(exp(−E(G(z)) − A)) − 1``: minimised over ``E`` and ``A`` at
    ``exp(−E − A) = dP/dG``, where it equals ``−KALE(P ‖ G)``."""
    # the exponential in float64: a heavy-tailed base (a flow) can put exp(−E − A) past
    # float32's range on a few samples without the objective being undefined
    tilt = torch.exp((-e_base - log_partition).double()).mean()
    return (e_data + log_partition).mean() + (tilt - 1).to(e_data.dtype)


def log_mean_exp(v: torch.Tensor) -> torch.Tensor:
    """``log mean exp(v)`` over the batch, computed stably."""
    return torch.logsumexp(v, 0) - math.log(v.shape[0])


def gradient_penalty(energy: Any, x: torch.Tensor, x_base: torch.Tensor,
                     generator: torch.Generator) -> torch.Tensor:
    """Mean ``‖∇_x E(x̂)‖²`` at ``x̂ = α x + (1 − α) x_base``, ``α ~ U(0, 1)`` per example
    (a graph to ``E``'s parameters, for the energy's update)."""
    n = min(x.shape[0], x_base.shape[0])
    alpha = torch.rand((n,) + (1,) * (x.dim() - 1), generator=generator, device=x.device)
    x_hat = (alpha * x[:n] + (1 - alpha) * x_base[:n]).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(x_hat).sum(), x_hat, create_graph=True)
    return grad.flatten(1).pow(2).sum(1).mean()


def _bounded(g: torch.Tensor) -> torch.Tensor:
    return 2 * g / (1 + g * g)


def _partition_rule(g: torch.Tensor) -> torch.Tensor:
    return g / (1 - g)


class KALE(Method):
    """Generalised EBM training: energy and base alternate on the KALE objective."""

    name: ClassVar[str] = "gebm"
    Config: ClassVar[type] = KALEConfig
    Model: ClassVar[type] = GEBM
    requires: ClassVar[frozenset[str]] = frozenset({"data_energy"})

    def __init__(self, model: Any, config: KALEConfig) -> None:
        super().__init__(model, config)
        if config.base_loss == "mle" and not model.has_density:
            raise ConfigError("method.base_loss=mle needs a base with a density: set "
                              "model.base=flow")
        self.prior: Any = model.prior
        self.energy_left = config.energy_steps_init  # energy steps before the next base step
        self.base_steps = 0
        self.partition_ready = config.partition_init_batches == 0

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return dict(GEBM_PRESETS)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c, betas = self.config, (self.config.beta1, self.config.beta2)
        return {
            "energy": OptimizerSpec(list(self.prior.energy.parameters()), c.lr_e, betas,
                                    lr_decay=c.lr_decay,
                                    grad_transform=_bounded if c.grad_transform else None),
            "partition": OptimizerSpec(
                [self.prior.log_partition], c.lr_a, betas, lr_decay=c.lr_decay,
                grad_transform=_partition_rule if c.grad_transform else None),
            "base": OptimizerSpec(list(self.model.generator.parameters()), c.lr_g, betas,
                                  lr_decay=c.lr_decay),
        }

    @torch.no_grad()
    def init_partition(self, batch_size: int, generator: torch.Generator) -> float:
        """Set ``A`` to ``log mean exp(−E(G(z)))`` over ``partition_init_batches`` base
        batches of ``batch_size`` (a log-sum-exp accumulated batch by batch)."""
        total, count = torch.tensor(-math.inf, device=self.model.device), 0
        for _ in range(self.config.partition_init_batches):
            z = self.prior.sample_base(batch_size, generator)
            v = -self.prior.data_energy(self.model.generator(z))
            total = torch.logaddexp(total, torch.logsumexp(v, 0))
            count += v.shape[0]
        value = float(total) - math.log(count)
        self.prior.log_partition.fill_(value)
        self.partition_ready = True
        return value

    def step(self, batch: Batch, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        model, c, x = self.model, self.config, batch.x
        model.check_data(x)
        n_base = c.base_batch_factor * x.shape[0]
        if not self.partition_ready:
            self.init_partition(n_base, generator)
        z = self.prior.sample_base(n_base, generator)
        energy = self.prior.energy
        A = self.prior.log_partition
        if self.energy_left > 0:  # an energy step: E and A
            self.energy_left -= 1
            with torch.no_grad():
                x_base = model.generator(z)
            e_data, e_base = energy(x), energy(x_base)
            # one objective, split so that each loss reaches its own optimiser's parameters
            loss = kale_energy_loss(e_data, e_base, A.detach())
            loss_a = kale_energy_loss(e_data.detach(), e_base.detach(), A)
            metrics = {"kale": -loss.detach()}
            if c.penalty > 0:
                gp = gradient_penalty(energy, x, x_base, generator)
                loss = loss + c.penalty * gp
                metrics["grad_penalty"] = gp.detach()
            losses = {"energy": loss, "partition": loss_a}
        else:  # a base step: G through the mini-batch partition estimate
            self.base_steps += 1
            self.energy_left = (c.energy_steps_init if self.base_steps % c.energy_init_every == 0
                                else c.energy_steps)
            # the KALE estimate, which the base minimises (with base_loss=mle only logged,
            # so no graph is built for it)
            with torch.set_grad_enabled(c.base_loss == "kale"), frozen(energy):
                e_base = energy(model.generate(z))
            with torch.no_grad():
                e_data = energy(x)
            a_hat = log_mean_exp(-e_base)
            kale = -e_data.mean() - a_hat
            metrics = {"kale": kale.detach(), "log_partition_batch": a_hat.detach()}
            if c.base_loss == "mle":
                nll = -cast(Any, model.generator).log_prob(x).mean()
                losses = {"base": nll}
                metrics["base_nll"] = nll.detach()
            else:
                losses = {"base": kale}
        metrics |= {"e_data": e_data.detach().mean(), "e_base": e_base.detach().mean(),
                    "log_partition": A.detach().clone(),
                    "base_steps": torch.tensor(float(self.base_steps))}
        return StepOutput(losses, metrics)

    def state(self) -> dict[str, Any]:
        return {**super().state(), "energy_left": self.energy_left,
                "base_steps": self.base_steps, "partition_ready": self.partition_ready}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.energy_left = int(state.get("energy_left", self.config.energy_steps_init))
        self.base_steps = int(state.get("base_steps", 0))
        self.partition_ready = bool(state.get("partition_ready", False))


# ---------------------------------------------------------------------------- presets


def _gebm_model(lebm_model: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A GEBM on a LEBM preset's generator: its latent size and generator settings."""
    keep = ("n_z", "generator", "gen_widths", "ngf", "gen_activation", "gen_output", "sigma")
    return {k: v for k, v in lebm_model.items() if k in keep} | extra


_MNIST_TRAIN = dict(max_steps=30_000, sample_every=3000, checkpoint_every=3000)

# CIFAR-10 (REFERENCE §5.5; the authors' configs/sample/sngan_cifar10 and train configs):
# z 100; batch 128; Adam 1e-4, β (0.5, 0.999) for E and G; gradient penalty λ 1; energies
# cut off below at −10 (the authors' default truncation); 150,000 base steps, i.e. with the
# alternation (100 energy steps before every 500th base step, 5 otherwise)
# 150,000 + 300·100 + 149,700·5 = 928,500 Trainer steps. Sampling: T = 100 and their "LMC"
# with γ = 1e-4, κ = 0.04 (the CIFAR-10 sample config; the README's defaults differ), i.e.
# kinetic Langevin with h = 2√γ = 0.02, 1,000 steps. Not reproduced: their learning-rate
# schedule (ExponentialLR 0.8 driven by an FID/MMD scheduler) — the rate stays constant.
_CIFAR_BASE_STEPS = 150_000
_CIFAR_TRAIN = dict(batch_size=128, sample_every=5000, checkpoint_every=5000,
                    max_steps=_CIFAR_BASE_STEPS + (_CIFAR_BASE_STEPS // 500) * 100
                    + (_CIFAR_BASE_STEPS - _CIFAR_BASE_STEPS // 500) * 5)
_CIFAR_SAMPLER = dict(temperature=100.0, prior_chain=dict(kernel="kinetic", n_steps=1000,
                                                          step_size=0.02, friction=0.04))

GEBM_PRESETS: dict[str, Preset] = {
    # the energy with spectral norm, as the authors' energies (dcgan-sn, resnet-sn): without
    # it a 2,000-step MNIST run grew holes of E ≈ −28 that the base collapsed into while
    # the learned A (Adam, lr 1e-4) stayed near 0
    **{f"gebm-{data}": Preset(
        f"generalised EBM on {title}: the LEBM MNIST generator as the base, a DCGAN energy "
        "with spectral norm (ndf 32), KALE with the authors' alternation and penalty; "
        "sampled in latent space",
        "gebm", {"data": dict(name=data),
                 "model": _gebm_model(MNIST_MODEL, energy_net="conv", ndf=32,
                                      energy_spectral_norm=True),
                 "method": {}, "train": _MNIST_TRAIN})
       for data, title in (("mnist", "MNIST"), ("fashion-mnist", "Fashion-MNIST"))},
    **{f"gebm-cifar10{suffix}": Preset(
        f"generalised EBM on CIFAR-10 with the paper's SNGAN {title} pair (z 100, batch "
        "128, 150k base steps; T 100, 1,000 kinetic-Langevin steps); GPU-sized",
        "gebm", {"data": dict(name="cifar10"),
                 "model": dict(n_z=100, generator=net, ngf=width, energy_net=net, ndf=width,
                               energy_floor=-10.0, **_CIFAR_SAMPLER),
                 "method": dict(lr_e=1e-4, lr_g=1e-4, lr_a=1e-4, penalty=1.0),
                 "train": _CIFAR_TRAIN})
       for suffix, title, net, width in (("", "ConvNet", "sngan", 64),
                                         ("-resnet", "ResNet", "resnet", 128))},
    "gebm-toy2d": Preset(
        "generalised EBM on a 2-D toy: MLP base and MLP energy (a few minutes on a CPU)",
        "gebm", {"data": BASE_PRESETS["toy2d"].overrides["data"],
                 "model": _gebm_model(BASE_PRESETS["toy2d"].overrides["model"],
                                      energy_net="mlp", energy_widths=(128, 128)),
                 "method": dict(lr_e=1e-3, lr_g=1e-3, lr_a=1e-3),
                 "train": BASE_PRESETS["toy2d"].overrides.get("train", {})}),
    **{f"gebm-flow-{name}": Preset(
        f"density estimation on {name}: a MAF base (zuko) by maximum likelihood, corrected "
        "by an MLP energy trained by KALE; held-out log q(x) with an estimated normaliser",
        "gebm", {"data": dict(name=data),
                 "model": dict(base="flow", flow="maf", flow_transforms=3,
                               flow_hidden=(64, 64), energy_net="mlp", energy_widths=(64, 64),
                               **({} if data == "8gaussians" else {"sigma": 1.0})),
                 "method": dict(base_loss="mle", lr_e=1e-3, lr_g=1e-3, lr_a=1e-3,
                                energy_steps=1, energy_steps_init=100,
                                energy_init_every=1000),
                 "train": dict(max_steps=steps, batch_size=batch, sample_every=1000,
                               checkpoint_every=1000)})
       for name, data, steps, batch in (("wine", "wine", 4000, 64),
                                        ("breast-cancer", "breast-cancer", 4000, 64),
                                        ("toy2d", "8gaussians", 6000, 200))},
}
