"""LEBM: maximum likelihood with short-run Langevin for prior and posterior.

Pang, Han, Nijkamp, Zhu, Wu (NeurIPS 2020); REFERENCE §1.2. One iteration:

1. posterior chain: ``K_post`` Langevin steps (step ``s_post``) on
   ``ℓ_post(z; x) = f(z) − ‖z‖²/(2σ0²) − ‖x − g(z)‖²/(2σ²)`` from ``N(0, I)``;
2. prior chain: ``K_prior`` steps (step ``s_prior``) on ``ℓ_prior(z) = f(z) − ‖z‖²/(2σ0²)``;
   both chains use the parameters as they stand at the start of the iteration;
3. generator loss ``L_G = (1/B) Σ_i ‖x_i − g(z_i^post)‖²`` (``recon_loss="sum"``, the
   official scaling, §0.4) or that divided by ``2σ²`` (``recon_loss="gaussian"``);
4. EBM loss ``L_f = mean f(z_prior) − mean f(z_post)`` (§0.5);

chain outputs are detached before the losses (§0.3). With a Gaussian prior (``f ≡ 0``)
there is no prior chain and no EBM loss: this is the ABP baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from lebm.likelihoods import squared_error
from lebm.methods.base import OptimizerSpec, StepOutput
from lebm.models import LatentEBM


@dataclass
class LEBMConfig:
    """Optimisation settings of LEBM (defaults: the SVHN script, REFERENCE §1.3)."""

    lr_g: float = field(default=1e-4, metadata={"gt": 0})
    lr_e: float = field(default=2e-5, metadata={"gt": 0})
    beta1_g: float = field(default=0.5, metadata={"min": 0, "lt": 1})
    beta2_g: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    beta1_e: float = field(default=0.5, metadata={"min": 0, "lt": 1})
    beta2_e: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    weight_decay_g: float = field(default=0.0, metadata={"min": 0})
    weight_decay_e: float = field(default=0.0, metadata={"min": 0})
    lr_decay: float = field(default=0.998, metadata={"gt": 0, "max": 1,
                                                     "help": "LR factor per epoch"})
    recon_loss: str = field(default="sum", metadata={"choices": ("sum", "gaussian")})
    grad_clip_g: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})
    grad_clip_e: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})


class LEBM:
    """The LEBM estimator (and ABP when the model's prior is Gaussian)."""

    name: ClassVar[str] = "lebm"
    Config: ClassVar[type] = LEBMConfig

    def __init__(self, model: LatentEBM, config: LEBMConfig) -> None:
        self.model, self.config = model, config

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        specs = {"generator": OptimizerSpec(
            list(self.model.generator.parameters()), c.lr_g, (c.beta1_g, c.beta2_g),
            c.weight_decay_g, c.lr_decay, c.grad_clip_g)}
        if self.model.prior.has_energy:
            specs["energy"] = OptimizerSpec(
                list(self.model.prior.parameters()), c.lr_e, (c.beta1_e, c.beta2_e),
                c.weight_decay_e, c.lr_decay, c.grad_clip_e)
        return specs

    def step(self, x: torch.Tensor, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        model = self.model
        z_post, post_trace = model.infer_latent(x, generator, record=diagnostics)
        has_energy = model.prior.has_energy
        if has_energy:
            z_prior, prior_trace = model.sample_latent(x.shape[0], generator, record=diagnostics)

        sq_err = squared_error(x, model.generate(z_post))
        loss_g = sq_err.mean()
        if self.config.recon_loss == "gaussian":
            loss_g = loss_g / (2 * model.likelihood.sigma**2)
        n_pix = x[0].numel()
        metrics = {
            "recon_error": sq_err.detach().mean(),  # ‖x − g(z)‖² per example (the §1.2 guard)
            "mse": sq_err.detach().mean() / n_pix,  # per pixel, model space
            "z_post_norm": z_post.norm(dim=1).mean(),
        }
        losses = {"generator": loss_g}
        if has_energy:
            f_pos = model.prior.neg_energy(z_post).mean()
            f_neg = model.prior.neg_energy(z_prior).mean()
            losses["energy"] = f_neg - f_pos
            metrics.update(f_pos=f_pos.detach(), f_neg=f_neg.detach(),
                           z_prior_norm=z_prior.norm(dim=1).mean())
        if diagnostics:
            traces = {"post": post_trace}
            if has_energy:
                traces["prior"] = prior_trace
            for name, trace in traces.items():
                if trace is not None:
                    metrics[f"{name}_grad_norm_last"] = trace.grad_norm[-1].mean()
                    metrics[f"{name}_logp_first"] = trace.log_density[0].mean()
                    metrics[f"{name}_logp_last"] = trace.log_density[-1].mean()
        return StepOutput(losses, metrics)

    def on_divergence(self, factor: float) -> None:
        """Shrink both Langevin step sizes by ``factor`` (kept in the model's config)."""
        c = self.model.config
        c.prior_step_size *= factor
        c.posterior_step_size *= factor

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass
