"""What the Trainer needs from a method, and what a method declares about itself.

A method owns its estimator (losses, chains); the Trainer owns the loop, the optimisers,
checkpoints and logging, and knows nothing about Langevin. A method module declares:

* ``Config``   its settings dataclass (the run config's ``method`` section);
* ``Model``    the model class it trains (its ``Config`` is the ``model`` section);
* ``requires`` the model capabilities it needs (``"energy"``, ``"gaussian"``, ``"symbols"``,
               ``"encoder"``), checked when it is built, with the fix named;
* ``presets()`` its named starting points, twins included;
* ``step(batch, generator, diagnostics)`` turning a ``Batch`` into losses, one per optimiser.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from lebm.errors import ConfigError
from lebm.models import LatentEBM, LatentModel
from lebm.nets import reparameterize
from lebm.sampling import frozen


@dataclass
class OptimizerSpec:
    """One Adam optimiser over ``params`` with its settings and per-epoch LR decay."""

    params: list[nn.Parameter]
    lr: float
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_decay: float = 1.0
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    # applied to every parameter's gradient before the step (after averaging across ranks)
    grad_transform: Callable[[torch.Tensor], torch.Tensor] | None = None


@dataclass
class StepOutput:
    """Losses (one scalar per optimiser name) and scalar metrics of one training step."""

    losses: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Batch:
    """One training batch: data ``x``, the examples' rows in the training data (``index``, set
    by the Trainer; methods with per-example state use it) and, for methods that ask for
    labels (``labelled_batch_size > 0``), a labelled batch ``(x_l, y_l)`` (``None`` if the
    data have no labelled examples)."""

    x: torch.Tensor
    labelled: tuple[torch.Tensor, torch.Tensor] | None = None
    index: torch.Tensor | None = None  # each example's row in the training data (or None)


@dataclass
class Preset:
    """A named starting point: method plus overrides of the defaults, section by section."""

    description: str
    method: str = "lebm"
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)


# what to set for each capability a method may require
_FIX = {"gaussian": "model.prior=gaussian", "stages": "model.prior=nce (a product of ratios)",
        "energy": "a learned prior (model.prior=ebm or symbol)",
        "symbols": "model.prior=symbol with model.n_classes >= 2",
        "encoder": "an encoder: set model.encoder=conv or mlp"}


class Method:
    """Base of every estimator: requirement check, divergence step scale, state."""

    name: ClassVar[str]
    Config: ClassVar[type]
    Model: ClassVar[type[LatentModel]] = LatentEBM
    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, model: LatentModel, config: Any) -> None:
        missing = sorted(self.requires - model.capabilities)
        if missing:
            raise ConfigError(f"method {self.name} needs "
                              + " and ".join(_FIX.get(need, need) for need in missing))
        self.model, self.config = model, config
        # multiplies every chain's step size; shrunk after a divergence, checkpointed
        self.step_scale = 1.0

    @classmethod
    def presets(cls) -> dict[str, Preset]:
        """Named presets of this method (``config.PRESETS`` collects every method's)."""
        return {}

    def set_data_size(self, n: int) -> None:
        """The number of training examples (the Trainer calls this once, before training);
        methods that keep per-example state size it here."""

    def synchronize(self, dist: Any) -> None:
        """Make per-example state agree across processes after a step (``Learner.update``
        calls it on every rank right after ``step``); a no-op for most methods."""

    def check_data(self, targets: torch.Tensor | None) -> None:
        """Refuse training labels this method and model cannot use (``ConfigError``, raised
        before the run folder is touched). Labels of -1 mark unlabelled examples."""

    @property
    def labelled_batch_size(self) -> int:
        """Labelled examples the Trainer adds to each ``Batch`` (0: none asked for)."""
        return 0

    def optimizers(self) -> dict[str, OptimizerSpec]:
        """Named optimiser specs; ``step`` returns a loss under each name."""
        raise NotImplementedError

    def step(self, batch: Batch, generator: torch.Generator,
             diagnostics: bool = False) -> StepOutput:
        """Turn a batch into losses (not yet back-propagated) and metrics."""
        raise NotImplementedError

    def on_divergence(self, factor: float) -> None:
        """Make the estimator more conservative after a NaN: shrink every chain's step size
        by ``factor`` (kept in the training state; the model's config is left alone)."""
        self.step_scale *= factor

    def state(self) -> dict[str, Any]:
        """Extra state to checkpoint (JSON/tensor only)."""
        return {"step_scale": self.step_scale}

    def load_state(self, state: dict[str, Any]) -> None:
        self.step_scale = float(state.get("step_scale", 1.0))


def decoder_loss(model: Any, x: torch.Tensor, out: torch.Tensor, recon_loss: str
                 ) -> torch.Tensor:
    """The generator's batch-averaged data term: the likelihood's distance (``"sum"``, e.g.
    ``‖x − g(z)‖²``, LEBM's official scaling) or ``−log p(x | z)`` (``"gaussian"``)."""
    if recon_loss == "sum":
        return model.likelihood.distance(x, out).mean()
    return -model.likelihood.log_prob(x, out).mean()


def inference_loss(model: Any, x: torch.Tensor, generator: torch.Generator, *,
                   recon: bool = True) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """The amortised ``q(z|x)``'s loss ``KL(q ‖ p_θ(z|x))`` up to ``log p(x)``, per batch:

        E_q[ −log p(x | g(z)) − log p̃(z) ] − H(q)      (one reparameterised draw)

    (``log Z`` does not depend on ``q``). The generator's and prior's weights are frozen: only
    ``q`` learns from it. ``recon=False`` leaves out the first term (when the decoder's own
    loss already reaches ``q`` through ``z``). Returns ``(loss, z_q, metrics)``, ``z_q`` with
    its graph to the encoder."""
    mu, logvar = model.encode(x)
    z_q = reparameterize(mu, logvar, generator)
    with frozen(model.prior):
        log_prior = model.prior.log_density(z_q)
    loss = -log_prior - 0.5 * logvar.sum(1)  # −H(q) up to a constant
    if recon:
        with frozen(model.generator):
            loss = loss - model.likelihood.log_prob(x, model.generate(z_q, x))
    metrics = {"q_logp_prior": log_prior.detach().mean(),
               "q_std": (0.5 * logvar.detach()).exp().mean()}
    return loss.mean(), z_q, metrics


def chain_metrics(name: str, trace: Any) -> dict[str, torch.Tensor]:
    """Logged diagnostics of a recorded chain ``name`` (``post`` / ``prior``): the last
    step's gradient norm and the log-density at the first and last step (and the mean
    acceptance for Metropolis kernels)."""
    if trace is None:
        return {}
    out = {f"{name}_grad_norm_last": trace.grad_norm[-1].mean(),
           f"{name}_logp_first": trace.log_density[0].mean(),
           f"{name}_logp_last": trace.log_density[-1].mean()}
    if trace.acceptance is not None:
        out[f"{name}_acceptance"] = trace.acceptance.mean()
    return out


class PersistentChains:
    """One latent per training example, kept across epochs and checkpoints (as alternating
    back-propagation does): each batch's posterior chains start where that example's chain
    last stopped instead of from noise, so fewer steps can reach the posterior.

    Rows are drawn from ``N(0, init_std² I)`` (the chain's own start) on first use, from
    the step's generator, so a run stays a function of its seed; ``state`` / ``load_state``
    carry the table through checkpoints (resume is exact). Under several processes each
    rank's updates are broadcast to all after every step (``synchronize``).
    """

    def __init__(self) -> None:
        self.table: torch.Tensor | None = None
        self.fresh: torch.Tensor | None = None  # rows never visited yet
        self.n = 0
        self.pending: tuple[Any, Any] = (None, None)  # this rank's last update

    def seen(self, index: torch.Tensor) -> torch.Tensor:
        """Which of the examples ``index`` already have a stored latent, ``(len,)`` bool."""
        if self.fresh is None:
            return torch.zeros(len(index), dtype=torch.bool)
        return ~self.fresh[index.to(self.fresh.device)]

    def start(self, index: torch.Tensor, dim: int, init_std: float,
              generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """The chains' starting points for the examples ``index``, shape ``(len, dim)``."""
        if self.n == 0:
            raise ValueError("persistent chains need the data size (Method.set_data_size)")
        if self.table is None:
            self.table = torch.zeros(self.n, dim, device=device)
            self.fresh = torch.ones(self.n, dtype=torch.bool, device=device)
        assert self.fresh is not None
        index = index.to(self.table.device)
        z0 = self.table[index].clone()
        new = self.fresh[index]
        noise = init_std * torch.randn(z0.shape, generator=generator, device=z0.device)
        return torch.where(new[:, None], noise, z0)

    def update(self, index: torch.Tensor, z: torch.Tensor) -> None:
        assert self.table is not None and self.fresh is not None
        index = index.to(self.table.device)
        self.table[index] = z.detach().to(self.table.dtype)
        self.fresh[index] = False
        self.pending = (index, z.detach())

    def synchronize(self, dist: Any) -> None:
        """Under several processes, every rank writes every rank's last update, so the
        tables stay identical (and rank 0's checkpoint holds all of them). Slices are
        padded to the longest rank's (index −1) for the collective."""
        if not dist.active or self.table is None or self.fresh is None:
            return
        index, z = self.pending
        dev = self.table.device
        n = torch.tensor([0 if index is None else len(index)], device=dev)
        rows = int(torch.stack(dist.gather(n)).max())
        pad_i = torch.full((rows,), -1, dtype=torch.int64, device=dev)
        pad_z = torch.zeros(rows, self.table.shape[1], device=dev)
        if index is not None and z is not None:
            pad_i[:len(index)] = index
            pad_z[:len(index)] = z.to(dev)
        for i, zz in zip(dist.gather(pad_i), dist.gather(pad_z)):
            keep = i >= 0
            self.table[i[keep]] = zz[keep]
            self.fresh[i[keep]] = False
        self.pending = (None, None)

    def state(self) -> dict[str, Any]:
        if self.table is None:
            return {}
        return {"chains": self.table.cpu(), "chains_fresh": self.fresh.cpu()}  # type: ignore[union-attr]

    def load_state(self, state: dict[str, Any], device: torch.device) -> None:
        if "chains" in state:
            self.table = state["chains"].to(device)
            self.fresh = state["chains_fresh"].to(device)
