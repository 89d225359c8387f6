"""Joint latent EBM prior for a multi-layer generator, by maximum likelihood.

Cui, Wu & Han (CVPR 2023); REFERENCE §3.2. The model (``HierarchicalEBM``):

    p(z_1..L) ∝ exp(Σ_i f_i(z_i)) · Π_{i<L} N(z_i; μ_i(z_{i+1}), σ_i²(z_{i+1})) · N(z_L; 0, σ0²)
    x ~ N(g(z_1), σ² I)

One iteration, all chains over every layer at once (one flat ``z``):

1. posterior chain (40 steps of 0.1 in the paper) on ``log p̃(z) + log p(x | g(z_1))``;
2. prior chain (60 steps of 0.4) on ``log p̃(z)``; both with the parameters as they stand;
3. decoder: ``−log p(x | g(z_1))`` at the posterior samples (``MSE / (2σ²)`` summed over
   pixels, batch-averaged; ``recon_loss="sum"``: the squared error alone, LEBM's scaling);
4. backbone: ``E_prior[Σ_i log p(z_i|z_{i+1})] − E_post[Σ_i log p(z_i|z_{i+1})]``. It is
   contrastive because the tilt makes the normaliser depend on the backbone;
5. each ``f_i`` with its own Adam: ``mean f_i(z_prior) − mean f_i(z_post)``.

Chain outputs are detached before the losses. With ``model.prior=layers`` (no energies) the
prior is the normalised backbone: no prior chain, and step 4 is the plain likelihood
``−E_post[Σ_i log p(z_i|z_{i+1})]`` (its prior term has zero gradient in expectation): the
hierarchical ABP baseline on the same networks.

**Variational variant** (REFERENCE §3.3; ``model.encoder`` set, ``model.inference=encoder``
or ``encoder+langevin``): a Gaussian inference network ``q(z_1..L | x)`` over every layer
replaces the posterior chain. It is trained on the negative ELBO with the joint prior,
``E_q[−log p(x | g(z_1)) − log p̃(z)] − H(q)`` (``log Z`` does not depend on ``q``), by the
reparameterised sample, the prior's weights held fixed in that term. The posterior samples
of steps 3–5 are that sample (``encoder``; the decoder loss then also trains ``q``), or a
posterior chain started from it (``encoder+langevin``, ``posterior_chain.n_steps`` of
refinement; ``q`` then sees the decoder with its weights held fixed). With
``model.prior=layers`` as well this is a hierarchical VAE on the same networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from lebm.errors import ConfigError
from lebm.methods.base import (
    Batch,
    Method,
    OptimizerSpec,
    Preset,
    StepOutput,
    chain_metrics,
    decoder_loss,
    inference_loss,
)
from lebm.methods.lebm import FAST_PATH
from lebm.models import HierarchicalEBM, LatentModel
from lebm.priors import JointLayerPrior, LayeredGaussianPrior, Prior


@dataclass
class JointConfig:
    """Optimisation settings (defaults: the CVPR'23 code, REFERENCE §3.4)."""

    lr_g: float = field(default=1e-4, metadata={"gt": 0, "help": "generator g"})
    lr_b: float = field(default=1e-4, metadata={
        "gt": 0, "help": "backbone conditionals p(z_i | z_{i+1})"})
    lr_e: float = field(default=2e-5, metadata={"gt": 0, "help": "every energy f_i"})
    beta1: float = field(default=0.9, metadata={"min": 0, "lt": 1})
    beta2: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    lr_decay: float = field(default=1.0, metadata={"gt": 0, "max": 1,
                                                   "help": "LR factor per epoch"})
    recon_loss: str = field(default="gaussian", metadata={
        "choices": ("gaussian", "sum"),
        "help": "gaussian: −log p(x|z) (MSE/(2σ²), the paper's); sum: ‖x − g(z)‖²"})
    grad_clip: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})
    lr_i: float = field(default=1e-4, metadata={
        "gt": 0, "help": "inference network q(z|x), when the model has one"})
    weight_decay: float = field(default=0.0, metadata={
        "min": 0, "help": "Adam weight decay of g and q (the ICCV'23 code: 5e-4)"})


class JointMLE(Method):
    """MLE of a generator under a joint (or plain) layered prior."""

    name: ClassVar[str] = "joint"
    Config: ClassVar[type] = JointConfig
    Model: ClassVar[type[LatentModel]] = HierarchicalEBM

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return dict(JOINT_PRESETS)

    def __init__(self, model: LatentModel, config: JointConfig) -> None:
        if not isinstance(model, HierarchicalEBM):
            raise ConfigError(f"method joint needs latent layers (a HierarchicalEBM model, the "
                              f"joint-* presets), got a {type(model).__name__}")
        super().__init__(model, config)
        self.variational = model.config.inference != "langevin"
        if self.variational and config.recon_loss != "gaussian":
            raise ConfigError("method.recon_loss=sum: the variational variant trains q on the "
                              "ELBO, which needs −log p(x|z); use method.recon_loss=gaussian")

    @property
    def prior(self) -> Prior:
        return self.model.prior

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        betas = (c.beta1, c.beta2)

        def spec(params: Any, lr: float, decay: float = 0.0) -> OptimizerSpec:
            return OptimizerSpec(list(params), lr, betas, decay, c.lr_decay, c.grad_clip)

        prior = self.prior
        specs = {"generator": spec(self.model.generator.parameters(), c.lr_g, c.weight_decay)}
        if isinstance(prior, LayeredGaussianPrior):
            specs["backbone"] = spec(prior.conditionals.parameters(), c.lr_b)
        if isinstance(prior, JointLayerPrior):
            for i, f in enumerate(prior.energies, 1):
                specs[f"energy_{i}"] = spec(f.parameters(), c.lr_e)
        elif prior.needs_chain:  # one energy on all layers (ICCV'23)
            specs["energy"] = spec(prior.parameters(), c.lr_e)
        if self.model.encoder is not None:
            specs["encoder"] = spec(self.model.encoder.parameters(), c.lr_i, c.weight_decay)
        return specs

    def _variational(self, x: torch.Tensor, generator: torch.Generator, diagnostics: bool
                     ) -> tuple[torch.Tensor, torch.Tensor, Any, dict[str, torch.Tensor]]:
        """q's loss, the posterior samples for steps 3–5 (with a graph to q under
        ``inference=encoder``), their chain trace, and q's metrics."""
        model = self.model
        amortised = model.config.inference == "encoder"  # the decoder loss is q's recon term
        loss, z_q, metrics = inference_loss(model, x, generator, recon=not amortised)
        trace = None
        if amortised:
            z_post = z_q
        else:
            z_post, trace = model.infer_latent(x, generator, z0=z_q.detach(),
                                               record=diagnostics, step_scale=self.step_scale)
        return loss, z_post, trace, metrics

    def step(self, batch: Batch, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        model, prior, x = self.model, self.prior, batch.x
        q_metrics: dict[str, torch.Tensor] = {}
        if self.variational:
            loss_q, z_post, post_trace, q_metrics = self._variational(x, generator, diagnostics)
        else:
            z_post, post_trace = model.infer_latent(x, generator, record=diagnostics,
                                                    step_scale=self.step_scale)
        tilted = prior.needs_chain
        if tilted:
            z_prior, prior_trace = model.sample_latent(x.shape[0], generator, record=diagnostics,
                                                       step_scale=self.step_scale)

        out = model.generate(z_post, x)
        loss_g = decoder_loss(model, x, out, self.config.recon_loss)
        metrics = {**model.likelihood.metrics(x, out), **q_metrics,
                   "z_post_norm": z_post.detach().norm(dim=1).mean()}
        z_post = z_post.detach()  # q's graph (encoder inference) ends at the decoder loss

        losses = {"generator": loss_g}
        if self.variational:
            losses["encoder"] = loss_q
        if isinstance(prior, LayeredGaussianPrior):
            lp_post = torch.stack(prior.conditional_log_probs(z_post)).sum(0).mean()
            losses["backbone"] = -lp_post
            metrics["backbone_logp_post"] = lp_post.detach()
            if tilted:  # the tilt makes the normaliser depend on the backbone
                lp_prior = torch.stack(prior.conditional_log_probs(z_prior)).sum(0).mean()
                losses["backbone"] = lp_prior - lp_post
                metrics["backbone_logp_prior"] = lp_prior.detach()
        if tilted:
            # one energy per layer (CVPR'23; losses and metrics energy_i) or one on all (ICCV'23)
            if isinstance(prior, JointLayerPrior):
                terms = {f"_{i}": pair for i, pair in enumerate(zip(
                    prior.layer_energies(z_post), prior.layer_energies(z_prior)), 1)}
            else:
                terms = {"": (prior.neg_energy(z_post), prior.neg_energy(z_prior))}
            f_pos_total = f_neg_total = x.new_zeros(())
            for suffix, (pos, neg) in terms.items():
                f_pos, f_neg = pos.mean(), neg.mean()
                losses[f"energy{suffix}"] = f_neg - f_pos
                if suffix:
                    metrics.update({f"f_pos{suffix}": f_pos.detach(),
                                    f"f_neg{suffix}": f_neg.detach()})
                f_pos_total = f_pos_total + f_pos.detach()
                f_neg_total = f_neg_total + f_neg.detach()
            # the totals: what the Trainer's energy guard watches
            metrics.update(f_pos=f_pos_total, f_neg=f_neg_total,
                           z_prior_norm=z_prior.norm(dim=1).mean())
        if diagnostics:
            if post_trace is not None:
                metrics.update(chain_metrics("post", post_trace))
            if tilted:
                metrics.update(chain_metrics("prior", prior_trace))
        return StepOutput(losses, metrics)


# ---------------------------------------------------------------------------- presets

def _joint_chains() -> dict[str, Any]:
    return dict(prior_chain=dict(n_steps=60, step_size=0.4),
                posterior_chain=dict(n_steps=40, step_size=0.1))


# The CVPR'23 code's configuration (joint-training/train_cifar10.py argparse defaults,
# REFERENCE §3.4): z1 128, z2 100; f1 3×200, f2 2×100, p(z1|z2) 4×200, LeakyReLU(0.2); the
# wide 4-layer generator; σ 0.3; Adam with default betas, E 2e-5, G and p(z1|z2) 1e-4, no
# decay; batch 100 with the partial batch dropped; 101 epochs; seed 1224; float32; training
# stops at the first NaN. The code's top layer is N(0, (e^0 + 0.01)²), i.e. σ0 = 1.01.
PAPER_MODEL: dict[str, Any] = dict(
    latent_sizes=(128, 100), generator="conv-wide", ngf=64, energy_widths=(200, 200, 200),
    upper_energy_widths=(100, 100), backbone_widths=(200, 200, 200, 200), sigma0=1.01,
    sigma=0.3, **_joint_chains())
PAPER_METHOD: dict[str, Any] = dict(lr_g=1e-4, lr_b=1e-4, lr_e=2e-5)


def _paper_train(steps_per_epoch: int) -> dict[str, Any]:
    return dict(batch_size=100, max_steps=101 * steps_per_epoch, drop_last=True, seed=1224,
                recon_guard=0.0, on_divergence="stop", sample_every=2000,
                checkpoint_every=2000)


# CPU-sized: LEBM's MNIST generator (conv, ngf 32) reading z1 = 16, under z2 = 8, so that
# `joint-mnist` and `mnist` differ only in the prior; the paper's energy and backbone widths;
# the `mnist` preset's learning rates (2e-4 for g and the backbone, 5e-5 for the energies).
MNIST_JOINT_MODEL: dict[str, Any] = dict(
    latent_sizes=(16, 8), generator="conv", ngf=32, energy_widths=(200, 200, 200),
    upper_energy_widths=(100, 100), backbone_widths=(200, 200, 200, 200), sigma=0.3,
    **_joint_chains(), precision=FAST_PATH)
MNIST_JOINT_METHOD: dict[str, Any] = dict(lr_g=2e-4, lr_b=2e-4, lr_e=5e-5)
MNIST_TRAIN: dict[str, Any] = dict(max_steps=30_000, sample_every=1000, checkpoint_every=1000)

# The `anomaly-mnist` twin (its z 8 read by the generator, under z2 = 4; σ 1, posterior 30 ×
# 0.1, batch 128, 2,000 steps, its learning rates and clipping): the anomaly table's joint row
# differs from its LEBM row only in the prior. The CVPR'23 MNIST anomaly settings are not
# published.
ANOMALY_JOINT_MODEL: dict[str, Any] = dict(
    MNIST_JOINT_MODEL, latent_sizes=(8, 4), sigma=1.0,
    posterior_chain=dict(n_steps=30, step_size=0.1))

_BASE: dict[str, Preset] = {
    "joint-digits": Preset(
        "sklearn 8×8 digits, MLP generator reading z1 = 16 under z2 = 8; the `digits` "
        "preset's generator, chains and learning rates (a few minutes on 2 CPU cores)",
        "joint", {"data": dict(name="digits"),
                  "model": dict(latent_sizes=(16, 8), generator="mlp", gen_widths=(256, 256),
                                energy_widths=(100, 100), upper_energy_widths=(100, 100),
                                backbone_widths=(100, 100), sigma=0.3,
                                prior_chain=dict(n_steps=40, step_size=0.4),
                                posterior_chain=dict(n_steps=20, step_size=0.1)),
                  "method": dict(lr_g=1e-3, lr_b=1e-3, lr_e=1e-4, lr_decay=0.995),
                  "train": dict(max_steps=3000, batch_size=100, sample_every=500,
                                checkpoint_every=500)}),
    "joint-mnist": Preset(
        "MNIST, two-layer generator (z 16 + 8) under a joint EBM prior; CPU-sized",
        "joint", {"data": dict(name="mnist"), "model": MNIST_JOINT_MODEL,
                  "method": MNIST_JOINT_METHOD, "train": MNIST_TRAIN}),
    "joint-anomaly-mnist": Preset(
        "MNIST anomaly detection: 'anomaly-mnist' (DAMC's settings, CPU-sized) with a two-layer "
        "latent (z 8 + 4) under a joint EBM prior; add data.exclude_classes=D and "
        "data.holdout_protocol=zenati",
        "joint", {"data": dict(name="mnist"), "model": ANOMALY_JOINT_MODEL,
                  "method": dict(lr_g=1e-4, lr_b=1e-4, lr_e=5e-5, lr_decay=0.996,
                                 grad_clip=100.0),
                  "train": dict(batch_size=128, max_steps=2000, sample_every=500,
                                checkpoint_every=100, keep_checkpoints=100)}),
    "joint-fashion-mnist": Preset(
        "Fashion-MNIST, two-layer generator (z 16 + 8) under a joint EBM prior; CPU-sized",
        "joint", {"data": dict(name="fashion-mnist"), "model": MNIST_JOINT_MODEL,
                  "method": MNIST_JOINT_METHOD, "train": MNIST_TRAIN}),
    "joint-svhn": Preset(
        "SVHN 32×32: the CVPR'23 joint-EBM code's configuration (REFERENCE §3.4)",
        "joint", {"data": dict(name="svhn"), "model": PAPER_MODEL, "method": PAPER_METHOD,
                  "train": _paper_train(732)}),
    "joint-cifar10": Preset(
        "CIFAR-10 32×32: the CVPR'23 joint-EBM code's configuration (REFERENCE §3.4)",
        "joint", {"data": dict(name="cifar10"), "model": PAPER_MODEL, "method": PAPER_METHOD,
                  "train": _paper_train(500)}),
    "joint-celeba64": Preset(
        "CelebA 64×64 from an image folder (data.root): the CVPR'23 settings with the wide "
        "generator grown by one block (the paper's CelebA network is not published); 400 "
        "steps per epoch: the 40,000-image 64×64 subset of the LEBM code",
        "joint", {"data": dict(name="celeba", image_size=64), "model": PAPER_MODEL,
                  "method": PAPER_METHOD, "train": _paper_train(400)}),
}


# The ICCV'23 model (Cui, Wu & Han, "Learning hierarchical features with joint latent space
# energy-based prior"; REFERENCE §3.1, §3.4), from its code (hierarchical-representation-ebm,
# train_fid.py argparse defaults): five latent layers of 10; one energy on their
# concatenation, 2 × 100 LeakyReLU(0.2) with spectral norm, over N(0, I); a ladder generator
# that joins each layer to the features above (our LadderGenerator, near the code's widths
# with ngf 128, not its exact layers); an inference network q over every layer (ours: the
# library's conv encoder, one Gaussian over all layers, not the code's ladder encoder); the
# loss 10 · ‖x − g(z)‖² + KL − E_q f, i.e. σ² = 1/20; prior chain 100 steps of 0.3; Adam with
# betas (0, 0.9), g and q at 3e-4 (the code's lrI is unused) with weight decay 5e-4, E at
# 2e-6, LR × 0.998 per epoch; batch 100, 200 epochs. The code trains SVHN on its 531k
# 'extra' split; these presets use the data set's train split.
ICCV_MODEL: dict[str, Any] = dict(
    latent_sizes=(10,) * 5, prior="ebm", generator="ladder", ngf=128, gen_widths=(2048,),
    energy_widths=(100, 100), energy_activation="leaky_relu", energy_spectral_norm=True,
    sigma=(1 / 20) ** 0.5, prior_chain=dict(n_steps=100, step_size=0.3), encoder="conv",
    inference="encoder")
ICCV_METHOD: dict[str, Any] = dict(lr_g=3e-4, lr_i=3e-4, lr_e=2e-6, beta1=0.0, beta2=0.9,
                                   weight_decay=5e-4, lr_decay=0.998)


def _iccv_train(steps_per_epoch: int) -> dict[str, Any]:
    return dict(batch_size=100, max_steps=200 * steps_per_epoch, drop_last=True,
                sample_every=2000, checkpoint_every=2000)


ICCV_PRESETS: dict[str, Preset] = {
    "iccv-digits": Preset(
        "sklearn 8×8 digits, three latent layers of 4 under one joint energy, ladder "
        "generator, inference network (a few minutes on 2 CPU cores)", "joint",
        {"data": dict(name="digits"),
         "model": dict(ICCV_MODEL, latent_sizes=(4, 4, 4), ngf=16, gen_widths=(128,),
                       encoder="mlp",
                       prior_chain=dict(n_steps=40, step_size=0.3)),
         "method": dict(ICCV_METHOD, lr_g=1e-3, lr_i=1e-3, lr_e=1e-4, lr_decay=0.995),
         "train": dict(max_steps=3000, batch_size=100, sample_every=500,
                       checkpoint_every=500)}),
    "iccv-mnist": Preset(
        "MNIST, five latent layers of 10 under one joint energy (ICCV'23), ladder generator "
        "(ngf 32), inference network; the code's learning rates; CPU-sized", "joint",
        {"data": dict(name="mnist"),
         "model": dict(ICCV_MODEL, ngf=32, gen_widths=(256,), precision=FAST_PATH),
         "method": ICCV_METHOD, "train": dict(_iccv_train(600), max_steps=30_000)}),
    "iccv-svhn": Preset(
        "SVHN 32×32: the ICCV'23 code's configuration (REFERENCE §3.4), train split", "joint",
        {"data": dict(name="svhn"), "model": ICCV_MODEL, "method": ICCV_METHOD,
         "train": _iccv_train(732)}),
    "iccv-cifar10": Preset(
        "CIFAR-10 32×32: the ICCV'23 SVHN settings (its CIFAR-10 code is not published)",
        "joint", {"data": dict(name="cifar10"), "model": ICCV_MODEL, "method": ICCV_METHOD,
                  "train": _iccv_train(500)}),
    "iccv-celeba64": Preset(
        "CelebA 64×64 from an image folder (data.root): the ICCV'23 SVHN settings with the "
        "ladder grown to 64×64; 400 steps per epoch", "joint",
        {"data": dict(name="celeba", image_size=64), "model": ICCV_MODEL,
         "method": ICCV_METHOD, "train": _iccv_train(400)}),
}


def _twin(p: Preset, description: str, model: dict[str, Any],
          method: dict[str, Any] | None = None) -> Preset:
    """``p`` with some model (and method) settings changed: the baseline twins below."""
    over = {k: dict(v) for k, v in p.overrides.items()}
    over["model"].update(model)
    over["method"].update(method or {})
    return Preset(description, "joint", over)


def _abp_twin(name: str, p: Preset) -> Preset:
    """The same networks with the energies off: the backbone alone as the prior."""
    return _twin(p, f"hierarchical ABP baseline of '{name}': its generator and Gaussian "
                 "backbone, no energies, posterior Langevin", dict(prior="layers"))


def _inference_twin(name: str, p: Preset, prior: str) -> Preset:
    """The same networks with a Gaussian inference network over every layer in place of the
    posterior chain (the encoder mirrors the generator: conv for images, MLP otherwise);
    ``prior="layers"`` turns the energies off too: a hierarchical VAE. ``q`` learns at
    ``g``'s rate, as in the ICCV'23 code (whose separate ``lrI`` is unused)."""
    gen = p.overrides["model"].get("generator", "conv")
    model = dict(prior=prior, encoder="mlp" if gen == "mlp" else "conv", inference="encoder")
    method = dict(lr_i=p.overrides["method"].get("lr_g", JointConfig.lr_g))
    if prior == "layers":
        return _twin(p, f"hierarchical VAE baseline of '{name}': its generator and Gaussian "
                     "backbone, no energies, an inference network q(z|x) over every layer",
                     model, method)
    return _twin(p, f"'{name}' with an inference network q(z|x) over every layer in place of "
                 "the posterior chain (the variational variant, REFERENCE §3.3)", model, method)


def _iccv_vae_twin(name: str, p: Preset) -> Preset:
    """The ICCV'23 networks with the energy off: a ladder VAE under N(0, I)."""
    return _twin(p, f"ladder VAE baseline of '{name}': its generator and inference network "
                 "under N(0, I), no energy", dict(prior="gaussian"))


JOINT_PRESETS: dict[str, Preset] = {
    **_BASE, **{f"abp-{k}": _abp_twin(k, v) for k, v in _BASE.items()},
    **{k.replace("joint-", "joint-inf-"): _inference_twin(k, v, "joint")
       for k, v in _BASE.items()},
    **{f"vae-{k}": _inference_twin(k, v, "layers") for k, v in _BASE.items()},
    **ICCV_PRESETS, **{f"vae-{k}": _iccv_vae_twin(k, v) for k, v in ICCV_PRESETS.items()}}
