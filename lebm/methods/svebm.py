"""SV-EBM: symbol-vector coupling with an amortised posterior (REFERENCE §2).

The prior's energy network outputs K logits ``f(z)``; the marginal prior is
``p(z) ∝ exp(F(z)) N(0, σ0² I)`` with ``F = logsumexp_k f_k`` and ``p(y|z) = softmax f(z)``.
With ``q(z|x) = N(μ(x), diag σ_q²(x))`` and one reparameterised draw ``z ~ q``, the step
minimises (per example, averaged over the batch)

    ‖x − g(z)‖²/(2σ²)                                      decoder NLL
    + β_t [ KL_fb(q ‖ N(0, σ0² I)) − F(z) + F(z⁻) ]        KL(q ‖ p_α) up to log Z
    − λ · MI(z; y)                                         information bottleneck term
    + w · CE(softmax f(μ(x_l)), y_l)                       labelled batch, if any
    + λ_f · (mean f(z)² + mean f(z⁻)²)                     optional, energy net only

where ``z⁻`` comes from short-run prior Langevin on the marginal (detached; it supplies
∇ log Z to the energy net only), ``KL_fb`` does not penalise latent dimensions whose
batch-mean KL is at most ``free_bits``, ``MI = H(y) − H(y|z)`` under ``p(y|z)`` on the
batch, and ``β_t`` is cyclical: 0 for the first ``ratio_zero`` of each cycle, a linear
ramp over the next ``ratio_increase``, then ``kl_max``.

The objective is split into two losses with disjoint parameters, whose sum has the
gradient of the objective: ``model`` (generator + encoder; the energy net's weights
detached) and ``energy`` (the energy net; ``z`` detached).

The last term (``logit_l2``, ours, in the spirit of the energy-magnitude penalty of
Du & Mordatch 2019) exists because the MI and labelled terms are minimised by driving the
logits apart without limit: a softmax grows more confident as their spread grows, and
with a fast energy learning rate the energy scale then drifts (MNIST-100, ``lr_e=2e-4``:
``f ≈ 400`` after 9k steps and falling accuracy, README).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from lebm.errors import ConfigError
from lebm.likelihoods import squared_error
from lebm.methods.base import OptimizerSpec, StepOutput
from lebm.models import LatentEBM
from lebm.nets import reparameterize
from lebm.priors import SymbolVectorPrior, gaussian_kl_per_dim


@dataclass
class SVEBMConfig:
    """Loss weights and optimisation of SV-EBM (defaults: the 2-D toy row of §2.3)."""

    lr: float = field(default=1e-3, metadata={"gt": 0, "help": "generator and encoder"})
    lr_e: float = field(default=1e-4, metadata={"gt": 0, "help": "energy net"})
    beta1: float = field(default=0.9, metadata={"min": 0, "lt": 1})
    beta2: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    weight_decay_e: float = field(default=0.0, metadata={"min": 0})
    lr_decay: float = field(default=1.0, metadata={"gt": 0, "max": 1,
                                                   "help": "LR factor per epoch"})
    kl_max: float = field(default=1.0, metadata={"min": 0, "help": "β after the ramp"})
    kl_cycle_steps: int = field(default=0, metadata={
        "min": 0, "help": "steps per cyclical-β cycle; 0 = constant kl_max"})
    ratio_zero: float = field(default=0.5, metadata={"min": 0, "max": 1})
    ratio_increase: float = field(default=0.25, metadata={"min": 0, "max": 1})
    free_bits: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})
    mi_weight: float = field(default=15.0, metadata={"min": 0})
    mi_balance: float = field(default=1.0, metadata={
        "min": 0, "help": "weight of H(y) in the MI term, λ_b H(y) − H(y|z); 1 = MI"})
    cls_weight: float = field(default=1.0, metadata={"min": 0})
    labelled_batch_size: int = field(default=100, metadata={
        "min": 0, "help": "labelled examples drawn each step (0 = unsupervised)"})
    grad_clip: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})
    grad_clip_e: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})
    logit_l2: float = field(default=0.0, metadata={
        "min": 0, "help": "weight of the energy net's mean squared logit at posterior and "
                          "prior samples (bounds the energy scale; 0 = off)"})


def cyclical_beta(step: int, c: SVEBMConfig) -> float:
    """β_t: 0, then a linear ramp, then ``kl_max``, within each cycle of ``kl_cycle_steps``."""
    if c.kl_cycle_steps == 0:
        return c.kl_max
    tau = (step % c.kl_cycle_steps) / c.kl_cycle_steps
    if tau < c.ratio_zero:
        return 0.0
    if c.ratio_increase == 0 or tau >= c.ratio_zero + c.ratio_increase:
        return c.kl_max
    return c.kl_max * (tau - c.ratio_zero) / c.ratio_increase


def symbol_entropies(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(H(y), H(y|z))`` with ``p(y|z) = softmax(logits)`` over the batch (``H(y)`` of the
    batch-mean ``p̄(y)``)."""
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    h_cond = -(p * log_p).sum(1).mean()
    log_marginal = torch.logsumexp(log_p, 0) - math.log(logits.shape[0])
    h_marg = -(log_marginal.exp() * log_marginal).sum()
    return h_marg, h_cond


def mutual_information(logits: torch.Tensor, balance: float = 1.0) -> torch.Tensor:
    """``MI(z; y) = H(y) − H(y|z)`` with ``p(y|z) = softmax(logits)`` over the batch.

    ``balance`` weights the marginal entropy, ``balance · H(y) − H(y|z)`` (1 = the MI).
    With weight 1 a symbol that has lost its mass (``p̄_k → 0``) is a stable point: at a
    confidently assigned example the gradient on its logit is about
    ``p_k (log p_k − log p̄_k + log p̄_c)``, negative unless ``p_k`` is concentrated on a
    few examples. With ``balance = b > 1`` it is about ``p_k ((1 − b) log p̄_k + b log p̄_c)``,
    positive once ``p̄_k`` is small enough, so dead symbols are pulled back."""
    h_marg, h_cond = symbol_entropies(logits)
    return balance * h_marg - h_cond


class SVEBM:
    """Symbol-vector coupling with an inference network, semi-supervised."""

    name: ClassVar[str] = "svebm"
    Config: ClassVar[type] = SVEBMConfig
    uses_labels: ClassVar[bool] = True

    def __init__(self, model: LatentEBM, config: SVEBMConfig) -> None:
        if not isinstance(model.prior, SymbolVectorPrior):
            raise ConfigError("method svebm needs model.prior=symbol with model.n_classes >= 2")
        if model.encoder is None:
            raise ConfigError("method svebm needs an encoder: set model.encoder=conv or mlp")
        self.model, self.config = model, config
        self.prior: SymbolVectorPrior = model.prior
        self.encoder = model.encoder
        self.n_steps = 0  # drives β_t; checkpointed via state()

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        params = list(self.model.generator.parameters()) + list(self.encoder.parameters())
        return {
            "model": OptimizerSpec(params, c.lr, (c.beta1, c.beta2), 0.0, c.lr_decay,
                                   c.grad_clip),
            "energy": OptimizerSpec(list(self.prior.parameters()), c.lr_e, (c.beta1, c.beta2),
                                    c.weight_decay_e, c.lr_decay, c.grad_clip_e),
        }

    def _frozen_logits(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z)`` with the energy net's weights detached (gradient to ``z`` only)."""
        params = {k: v.detach() for k, v in self.prior.energy_net.named_parameters()}
        return torch.func.functional_call(self.prior.energy_net, params, (z,))

    def step(self, x: torch.Tensor, generator: torch.Generator, diagnostics: bool = False, *,
             labelled: tuple[torch.Tensor, torch.Tensor] | None = None) -> StepOutput:
        model, c = self.model, self.config
        beta = cyclical_beta(self.n_steps, c)
        mu, logvar = model.encode(x)
        z = reparameterize(mu, logvar, generator)
        sq_err = squared_error(x, model.generate(z))
        nll = sq_err / (2 * model.likelihood.sigma**2)
        kl_dims = gaussian_kl_per_dim(mu, logvar, model.config.sigma0)
        kl_dim_mean = kl_dims.mean(0)
        kl_fb = (kl_dims * (kl_dim_mean > c.free_bits).float()).sum(1) if c.free_bits > 0 \
            else kl_dims.sum(1)
        z_prior, prior_trace = model.sample_latent(x.shape[0], generator, record=diagnostics)

        logits_enc = self._frozen_logits(z)  # gradients reach the encoder only
        logits_ebm = self.prior.logits(z.detach())  # gradients reach the energy net only
        f_pos_enc = torch.logsumexp(logits_enc, 1)
        f_pos = torch.logsumexp(logits_ebm, 1)
        logits_neg = self.prior.logits(z_prior)
        f_neg = torch.logsumexp(logits_neg, 1)
        mi_enc = mutual_information(logits_enc, c.mi_balance)
        h_marg, h_cond = symbol_entropies(logits_ebm)
        mi_ebm = c.mi_balance * h_marg - h_cond

        loss_model = (nll + beta * (kl_fb - f_pos_enc)).mean() - c.mi_weight * mi_enc
        loss_energy = beta * (f_neg.mean() - f_pos.mean()) - c.mi_weight * mi_ebm
        if c.logit_l2 > 0:
            loss_energy = loss_energy + c.logit_l2 * (logits_ebm.pow(2).mean()
                                                      + logits_neg.pow(2).mean())
        metrics: dict[str, torch.Tensor] = {
            "recon_error": sq_err.detach().mean(), "mse": sq_err.detach().mean() / x[0].numel(),
            "kl": kl_dims.detach().sum(1).mean(), "beta": torch.tensor(beta),
            "mi": (h_marg - h_cond).detach(), "f_pos": f_pos.detach().mean(),
            "f_neg": f_neg.detach().mean(), "logit_abs": logits_ebm.detach().abs().mean(),
            "z_post_norm": mu.detach().norm(dim=1).mean(),
            "z_prior_norm": z_prior.norm(dim=1).mean(),
        }
        if labelled is not None and c.cls_weight > 0 and len(labelled[0]) > 0:
            x_l, y_l = labelled
            mu_l, _ = model.encode(x_l)
            ce_enc = F.cross_entropy(self._frozen_logits(mu_l), y_l)
            logits_l = self.prior.logits(mu_l.detach())
            ce_ebm = F.cross_entropy(logits_l, y_l)
            loss_model = loss_model + c.cls_weight * ce_enc
            loss_energy = loss_energy + c.cls_weight * ce_ebm
            metrics["ce"] = ce_ebm.detach()
            metrics["acc_labelled"] = (logits_l.argmax(1) == y_l).float().mean()
        if diagnostics and prior_trace is not None:
            metrics["prior_logp_first"] = prior_trace.log_density[0].mean()
            metrics["prior_logp_last"] = prior_trace.log_density[-1].mean()
        self.n_steps += 1
        return StepOutput({"model": loss_model, "energy": loss_energy}, metrics)

    def on_divergence(self, factor: float) -> None:
        """Shrink the prior Langevin step size by ``factor``."""
        self.model.config.prior_step_size *= factor

    def state(self) -> dict[str, Any]:
        return {"n_steps": self.n_steps}

    def load_state(self, state: dict[str, Any]) -> None:
        self.n_steps = int(state.get("n_steps", 0))
