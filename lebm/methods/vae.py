"""VAE baseline: Gaussian prior, amortised Gaussian encoder, the same generator as LEBM.

Kingma & Welling (2014). The loss is the negative ELBO per example,

    L = E_{q(z|x)}[ ‖x − g(z)‖² / (2σ²) ] + β · KL( N(μ(x), diag σ_q²(x)) ‖ N(0, σ0² I) ),
    KL = ½ Σ_j ( (σ_q,j² + μ_j²)/σ0² − 1 − log σ_q,j² + log σ0² ),

with one reparameterised draw ``z = μ + σ_q ε`` per example (``β = 1``: the true ELBO,
up to the Gaussian likelihood's constant). No MCMC anywhere; ``model.infer`` returns
``μ(x)`` (``inference="encoder"``) or refines a draw of ``q`` by posterior Langevin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from lebm.errors import ConfigError
from lebm.likelihoods import squared_error
from lebm.methods.base import OptimizerSpec, StepOutput
from lebm.models import LatentEBM
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


class VAE:
    """The VAE estimator on a ``LatentEBM`` with a Gaussian prior and an encoder."""

    name: ClassVar[str] = "vae"
    Config: ClassVar[type] = VAEConfig

    def __init__(self, model: LatentEBM, config: VAEConfig) -> None:
        if model.prior.has_energy:
            raise ConfigError("method vae needs model.prior=gaussian (an EBM prior is "
                              "trained by method lebm)")
        if model.encoder is None:
            raise ConfigError("method vae needs an encoder: set model.encoder=conv or mlp")
        self.model, self.config = model, config
        self.encoder = model.encoder

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        params = list(self.model.generator.parameters()) + list(self.encoder.parameters())
        return {"model": OptimizerSpec(params, c.lr, (c.beta1, c.beta2), c.weight_decay,
                                       c.lr_decay, c.grad_clip)}

    def step(self, x: torch.Tensor, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        model = self.model
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, generator)
        sq_err = squared_error(x, model.generate(z))
        kl = gaussian_kl(mu, logvar, model.config.sigma0)
        nll = sq_err / (2 * model.likelihood.sigma**2)
        loss = (nll + self.config.kl_weight * kl).mean()
        metrics = {
            "recon_error": sq_err.detach().mean(),
            "mse": sq_err.detach().mean() / x[0].numel(),
            "kl": kl.detach().mean(),
            "neg_elbo": (nll + kl).detach().mean(),
            "z_post_norm": mu.detach().norm(dim=1).mean(),
        }
        return StepOutput({"model": loss}, metrics)

    def on_divergence(self, factor: float) -> None:
        """Nothing to make more conservative beyond the Trainer's learning-rate cut."""

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass
