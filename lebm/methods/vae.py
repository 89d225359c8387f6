"""VAE baseline: Gaussian prior, amortised Gaussian encoder, the same generator as LEBM.

Kingma & Welling (2014). The loss is the negative ELBO per example,

    L = E_{q(z|x)}[ −log p(x | g(z)) ] + β · KL( N(μ(x), diag σ_q²(x)) ‖ N(0, σ0² I) ),
    KL = ½ Σ_j ( (σ_q,j² + μ_j²)/σ0² − 1 − log σ_q,j² + log σ0² ),

with one reparameterised draw ``z = μ + σ_q ε`` per example (``β = 1``: the true ELBO,
up to the likelihood's constant; for the Gaussian ``−log p = ‖x − g(z)‖²/(2σ²)``). The
logged ``neg_elbo`` puts the constant back, so it is in nats and comparable with
``lebm eval``'s ``ll``. No MCMC
anywhere; ``model.infer`` returns ``μ(x)`` (``inference="encoder"``) or refines a draw of
``q`` by the posterior chain. Every LEBM and SV-EBM preset has a ``vae-`` twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from lebm.methods.base import Batch, Method, OptimizerSpec, Preset, StepOutput
from lebm.methods.lebm import BASE_PRESETS
from lebm.methods.svebm import SV_PRESETS
from lebm.nets import reparameterize
from lebm.priors import gaussian_kl_per_dim


@dataclass
class VAEConfig:
    """Optimisation settings of the VAE (one Adam over generator and encoder)."""

    lr: float = field(default=1e-3, metadata={"gt": 0})
    beta1: float = field(default=0.9, metadata={"min": 0, "lt": 1})
    beta2: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    weight_decay: float = field(default=0.0, metadata={"min": 0})
    lr_decay: float = field(default=0.998, metadata={"gt": 0, "max": 1,
                                                     "help": "LR factor per epoch"})
    kl_weight: float = field(default=1.0, metadata={"min": 0, "help": "β; 1 = the ELBO"})
    grad_clip: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, sigma0: float) -> torch.Tensor:
    """``KL(N(μ, diag e^{logvar}) ‖ N(0, σ0² I))`` per example, shape ``(batch,)``."""
    return gaussian_kl_per_dim(mu, logvar, sigma0).sum(1)


def vae_twin(name: str, p: Preset) -> Preset:
    """The VAE baseline of a preset: its data and generator, a Gaussian prior, an encoder
    mirroring the generator."""
    over = {k: dict(v) for k, v in p.overrides.items()}
    model = over.setdefault("model", {})
    kind = model.get("generator", "conv")
    model.update(prior="gaussian", inference="encoder",
                 encoder="gru" if kind == "gru" else "conv" if kind.startswith("conv") else "mlp")
    method = over.get("method", {})
    over["method"] = {k: v for k, v in method.items() if k == "lr_decay"}
    if "grad_clip_g" in method:  # the generator's clipping, for the one optimiser
        over["method"]["grad_clip"] = method["grad_clip_g"]
    return Preset(f"VAE baseline of '{name}': its generator, Gaussian prior, amortised "
                  "encoder", "vae", over)


class VAE(Method):
    """The VAE estimator on a model with a Gaussian prior and an encoder."""

    name: ClassVar[str] = "vae"
    Config: ClassVar[type] = VAEConfig
    requires: ClassVar[frozenset[str]] = frozenset({"gaussian", "encoder"})

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return {f"vae-{k}": vae_twin(k, v) for k, v in {**BASE_PRESETS, **SV_PRESETS}.items()}

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        assert self.model.encoder is not None  # required above
        params = list(self.model.generator.parameters()) + list(self.model.encoder.parameters())
        return {"model": OptimizerSpec(params, c.lr, (c.beta1, c.beta2), c.weight_decay,
                                       c.lr_decay, c.grad_clip)}

    def step(self, batch: Batch, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        model, x = self.model, batch.x
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, generator)
        out = model.generate(z, x)
        nll = -model.likelihood.log_prob(x, out)
        kl = gaussian_kl(mu, logvar, model.prior.sigma0)
        loss = (nll + self.config.kl_weight * kl).mean()
        metrics = {
            **model.likelihood.metrics(x, out),
            "kl": kl.detach().mean(),
            # in nats: the likelihood's normalising constant (−D/2·log 2πσ²) put back
            "neg_elbo": (nll + kl).detach().mean() - model.likelihood.log_normalizer(x),
            "z_post_norm": mu.detach().norm(dim=1).mean(),
        }
        return StepOutput({"model": loss}, metrics)
