"""Multi-stage density-ratio (NCE) prior: a latent EBM prior learned without prior MCMC.

Xiao & Han (NeurIPS 2022; REFERENCE §4). The prior is a product of density ratios,
``p(z) ∝ N(z; 0, σ0² I) · exp(Σ_{k<S} r_k(z))`` (``ProductOfRatiosPrior``). Stage ``k`` learns
``r_k`` by logistic regression: a classifier between samples of the aggregate posterior
``q(z)`` (posterior chains of training data) and samples of the prior of the stages before
it, ``p_k ∝ N(0, σ0²) · exp(Σ_{j<k} r_j)``::

    L_r = E_q[softplus(−r_k(z))] + E_{p_k}[softplus(r_k(z))],   at its optimum r_k = log q/p_k

so ``p_k · exp(r_k) = q``. The generator learns from posterior samples as in LEBM; the
posterior chain targets the current product prior, stages before ``k`` fixed and ``r_k`` as
it stands. No MLE prior chain runs: ``p_0`` is sampled exactly, and ``p_k`` (``k > 0``) by
the prior chain on ``log p̃_k`` (``prior_sampler="langevin"``, the default) or by
self-normalised importance resampling from ``N(0, σ0²)`` with weights ``exp(Σ_{j<k} r_j)``
(``"sir"``, no chain at all). Measured on the motivating case, ``q = N(6, 0.5²)`` against
``N(0, 1)`` in 1-D (``benchmarks/nce_stages.py``): one stage leaves ``KL(q ‖ p̂) ≈ 2``; four
stages bring it to 0.03 with the chain, but SIR cannot reach ``q`` from ``N(0, 1)`` (its
candidates almost never land there) and ends worse than one stage. SIR suits stages that
stay close to the reference.

The stage rule (ours; the paper's is not published): every ``stage_steps`` steps the current
classifier's held-out accuracy (a moving average of its accuracy on each step's fresh
samples, measured before the step's update) is compared with ``add_threshold``. Above it,
``q`` and the product are still told apart: the stage freezes and the next one starts at
``r ≡ 0`` (up to ``max_stages`` of the model). At or below it (near chance, 0.5) the current
stage keeps training and the rule is checked again after another ``stage_steps``. The stage,
the accuracy and every decision are logged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from lebm.methods.base import Batch, Method, OptimizerSpec, Preset, StepOutput, chain_metrics
from lebm.methods.lebm import BASE_PRESETS
from lebm.priors import LogDensity


@dataclass
class NCEConfig:
    """Optimisation and stage rule of the multi-stage NCE prior."""

    lr_g: float = field(default=1e-4, metadata={"gt": 0})
    lr_r: float = field(default=1e-4, metadata={"gt": 0, "help": "the ratio classifiers"})
    beta1_g: float = field(default=0.5, metadata={"min": 0, "lt": 1})
    beta2_g: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    beta1_r: float = field(default=0.5, metadata={"min": 0, "lt": 1})
    beta2_r: float = field(default=0.999, metadata={"min": 0, "lt": 1})
    lr_decay: float = field(default=0.998, metadata={"gt": 0, "max": 1,
                                                     "help": "LR factor per epoch"})
    recon_loss: str = field(default="sum", metadata={"choices": ("sum", "gaussian")})
    stage_steps: int = field(default=2000, metadata={
        "min": 1, "help": "steps between stage decisions (a stage trains at least this long)"})
    add_threshold: float = field(default=0.6, metadata={
        "gt": 0.5, "lt": 1, "help": "start a new stage when the classifier's held-out "
                                    "accuracy exceeds this; at or below it keep the stage"})
    accuracy_decay: float = field(default=0.99, metadata={
        "min": 0, "lt": 1, "help": "moving average of the held-out accuracy"})
    prior_sampler: str = field(default="langevin", metadata={
        "choices": ("sir", "langevin"),
        "help": "samples of the earlier stages' prior: importance resampling from N(0, σ0²) "
                "or the prior chain"})
    sir_candidates: int = field(default=10, metadata={
        "min": 1, "help": "sir: candidates from N(0, σ0²) per sample"})
    grad_clip_g: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})
    grad_clip_r: float = field(default=0.0, metadata={"min": 0, "help": "0 = off"})


def logistic_ratio_loss(r_q: torch.Tensor, r_p: torch.Tensor) -> torch.Tensor:
    """``E_q[softplus(−r)] + E_p[softplus(r)]``: minimised by ``r = log q/p``."""
    return F.softplus(-r_q).mean() + F.softplus(r_p).mean()


def ratio_accuracy(r_q: torch.Tensor, r_p: torch.Tensor) -> torch.Tensor:
    """Balanced accuracy of the classifier ``r > 0 ⇔ q``."""
    return 0.5 * ((r_q > 0).float().mean() + (r_p <= 0).float().mean())


ChainSampler = Callable[[LogDensity, int, torch.Generator], torch.Tensor]


def sample_stage_base(prior: Any, k: int, n: int, generator: torch.Generator, *,
                      sampler: str = "sir", candidates: int = 10,
                      chain: ChainSampler | None = None) -> torch.Tensor:
    """``n`` samples of ``p_k ∝ N(0, σ0²) exp(Σ_{j<k} r_j)``: exact for ``k = 0``; else
    self-normalised importance resampling of ``candidates × n`` draws of ``N(0, σ0²)``
    (``sir``), or ``chain(log p̃_k, n, generator)`` (``langevin``)."""
    if k == 0:
        return prior.sample_base(n, generator)
    if sampler == "langevin":
        if chain is None:
            raise ValueError("sampler=langevin needs a chain")
        return chain(prior.base_of_stage(k), n, generator)
    draws = prior.sample_base(n * candidates, generator)
    with torch.no_grad():
        log_w = prior.stage_sum(draws, k).view(n, candidates)
    pick = torch.multinomial(torch.softmax(log_w.double(), 1), 1, generator=generator)
    return draws.view(n, candidates, -1)[torch.arange(n, device=pick.device), pick[:, 0]]


def fit_stages(prior: Any, sample_q: Callable[[int, torch.Generator], torch.Tensor],
               n_stages: int, steps: int, generator: torch.Generator, *, batch: int = 256,
               lr: float = 1e-3, sampler: str = "sir", candidates: int = 10,
               chain: ChainSampler | None = None, start_new: bool = False) -> list[float]:
    """Learn ``n_stages`` ratio stages of ``prior`` towards the distribution ``sample_q``
    draws from, ``steps`` Adam steps each (the estimator of ``NCE`` without a generator:
    for tests and figures), the first being the current stage (a new one with
    ``start_new``). Returns each stage's final accuracy on fresh samples."""
    accuracies = []
    for stage in range(n_stages):
        k = prior.start_stage() if stage > 0 or start_new else prior.stages - 1
        opt = torch.optim.Adam(prior.ratios[k].parameters(), lr=lr)
        for _ in range(steps):
            z_q = sample_q(batch, generator)
            z_p = sample_stage_base(prior, k, batch, generator, sampler=sampler,
                                    candidates=candidates, chain=chain)
            loss = logistic_ratio_loss(prior.ratio(k, z_q), prior.ratio(k, z_p))
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            z_q = sample_q(4 * batch, generator)
            z_p = sample_stage_base(prior, k, 4 * batch, generator, sampler=sampler,
                                    candidates=candidates, chain=chain)
            accuracies.append(float(ratio_accuracy(prior.ratio(k, z_q), prior.ratio(k, z_p))))
    return accuracies


class NCE(Method):
    """The multi-stage NCE estimator on a model with a product-of-ratios prior."""

    name: ClassVar[str] = "nce"
    Config: ClassVar[type] = NCEConfig
    requires: ClassVar[frozenset[str]] = frozenset({"stages"})

    def __init__(self, model: Any, config: NCEConfig) -> None:
        super().__init__(model, config)
        self.prior: Any = model.prior
        self.stage_step = 0  # steps since the last stage decision
        self.accuracy: float | None = None  # moving average of the held-out accuracy

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        return dict(NCE_PRESETS)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "generator": OptimizerSpec(list(self.model.generator.parameters()), c.lr_g,
                                       (c.beta1_g, c.beta2_g), 0.0, c.lr_decay, c.grad_clip_g),
            # every stage's network; only the current stage gets a gradient
            "ratio": OptimizerSpec(list(self.prior.parameters()), c.lr_r,
                                   (c.beta1_r, c.beta2_r), 0.0, c.lr_decay, c.grad_clip_r),
        }

    def _chain(self, target: LogDensity, n: int, generator: torch.Generator) -> torch.Tensor:
        """The model's prior chain on ``target`` (the ``langevin`` stage sampler)."""
        z, _ = self.model.sample_latent(n, generator, target=target, step_scale=self.step_scale)
        return z

    def step(self, batch: Batch, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        model, c, x = self.model, self.config, batch.x
        k = self.prior.stages - 1  # the stage being learned
        z_post, post_trace = model.infer_latent(x, generator, record=diagnostics,
                                                step_scale=self.step_scale)
        z_neg = sample_stage_base(self.prior, k, x.shape[0], generator,
                                  sampler=c.prior_sampler, candidates=c.sir_candidates,
                                  chain=self._chain)

        out = model.generate(z_post, x)
        if c.recon_loss == "sum":
            loss_g = model.likelihood.distance(x, out).mean()
        else:
            loss_g = -model.likelihood.log_prob(x, out).mean()
        r_q, r_p = self.prior.ratio(k, z_post), self.prior.ratio(k, z_neg)
        loss_r = logistic_ratio_loss(r_q, r_p)
        accuracy = ratio_accuracy(r_q.detach(), r_p.detach())
        metrics: dict[str, torch.Tensor] = {
            **model.likelihood.metrics(x, out), "z_post_norm": z_post.norm(dim=1).mean(),
            "stage": torch.tensor(float(k)), "nce_accuracy": accuracy,
            "f_pos": self.prior.neg_energy(z_post).detach().mean(),
            "ratio_q": r_q.detach().mean(), "ratio_p": r_p.detach().mean()}
        metrics["nce_accuracy_avg"] = torch.tensor(self._track(float(accuracy)))
        if diagnostics:
            metrics.update(chain_metrics("post", post_trace))
        return StepOutput({"generator": loss_g, "ratio": loss_r}, metrics)

    def _track(self, accuracy: float) -> float:
        """Update the moving accuracy and return it; at a decision point maybe start the
        next stage (whose average then starts afresh)."""
        d = self.config.accuracy_decay
        average = accuracy if self.accuracy is None else d * self.accuracy + (1 - d) * accuracy
        self.accuracy = average
        self.stage_step += 1
        if self.stage_step < self.config.stage_steps:
            return average
        self.stage_step = 0
        if average > self.config.add_threshold and self.prior.stages < self.prior.max_stages:
            self.prior.start_stage()  # r_new ≡ 0: the prior is unchanged at this moment
            self.accuracy = None
        return average

    def state(self) -> dict[str, Any]:
        return {**super().state(), "stage_step": self.stage_step, "accuracy": self.accuracy}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.stage_step = int(state.get("stage_step", 0))
        acc = state.get("accuracy")
        self.accuracy = None if acc is None else float(acc)


# ---------------------------------------------------------------------------- presets


def nce_twin(name: str, p: Preset) -> Preset:
    """The multi-stage NCE prior on a LEBM preset's data and generator."""
    over = {k: dict(v) for k, v in p.overrides.items()}
    model = over.setdefault("model", {})
    model.update(prior="nce", max_stages=4)
    lebm_method = over.get("method", {})
    over["method"] = {"lr_g": lebm_method.get("lr_g", 1e-4),
                      "lr_r": lebm_method.get("lr_e", 2e-5) * 5,
                      **({"lr_decay": lebm_method["lr_decay"]} if "lr_decay" in lebm_method
                         else {})}
    train = over.get("train", {})
    over["method"]["stage_steps"] = max(200, int(train.get("max_steps", 10_000)) // 8)
    return Preset(f"multi-stage NCE prior on '{name}': its data and generator, the prior "
                  "learned by classifiers in stages, no prior chain in training", "nce", over)


NCE_PRESETS: dict[str, Preset] = {
    f"nce-{k}": nce_twin(base, BASE_PRESETS[base]) for k, base in (
        ("mnist", "mnist"), ("anomaly-mnist", "anomaly-mnist"),
        ("fashion-mnist", "fashion-mnist"), ("toy2d", "toy2d"),
        ("svhn", "svhn-fast"), ("cifar10", "cifar10"), ("celeba64", "celeba64"))}
