"""One training update, reusable outside the Trainer.

``Learner`` builds a run config's model and method, the method's Adam optimisers and their
per-epoch LR schedules, and turns a ``Batch`` into one update::

    learner = Learner(build_config("svhn"), torch.device("cpu"), data_shape=(3, 32, 32))
    scalars, bad = learner.update(Batch(x), generator)

The Trainer drives it over a data set (adding the run folder, resume and recovery);
``benchmarks/bench_train.py`` times it on a fixed batch. Gradients are averaged across
processes (``Distributed``) after the backward pass, as DistributedDataParallel would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch

from lebm.config import RunConfig
from lebm.errors import ConfigError
from lebm.methods import METHODS, Batch, Method, OptimizerSpec
from lebm.models import LatentModel
from lebm.train.distributed import Distributed


class Learner:
    """A model, its method and their optimisers (``cfg.model`` unless ``model_config``)."""

    model: LatentModel
    method: Method
    specs: dict[str, OptimizerSpec]

    def __init__(self, cfg: RunConfig, device: torch.device, *,
                 data_shape: tuple[int, ...] | None = None, model_config: Any = None,
                 dist: Distributed | None = None) -> None:
        model_cfg = cfg.model if model_config is None else model_config
        if data_shape is not None:
            model_cfg.data_shape = tuple(data_shape)
        method_cls = METHODS[cfg.method_name]
        try:
            self.model = cast(Any, method_cls.Model)(model_cfg).to(device)
        except ValueError as exc:  # an architecture that cannot fit the data
            raise ConfigError(f"model: {exc}") from exc
        self.method = method_cls(self.model, cfg.method)
        self.specs = self.method.optimizers()
        self.optimizers = {
            name: torch.optim.Adam(s.params, lr=s.lr, betas=s.betas, weight_decay=s.weight_decay)
            for name, s in self.specs.items()}
        self.schedulers = {
            name: torch.optim.lr_scheduler.ExponentialLR(opt, self.specs[name].lr_decay)
            for name, opt in self.optimizers.items()}
        self.dist = dist or Distributed()

    def update(self, batch: Batch, generator: torch.Generator, diagnostics: bool = False,
               guard: Callable[[dict[str, float]], str | None] | None = None
               ) -> tuple[dict[str, float], str | None]:
        """Compute the method's losses; if every logged scalar is finite (and ``guard``
        returns ``None``), back-propagate and step every optimiser.

        Returns the scalars (losses as ``loss_<name>``, averaged over processes; one host
        sync) and ``None``, or the name and value of the bad quantity (no update made).
        """
        out = self.method.step(batch, generator, diagnostics)
        self.method.synchronize(self.dist)  # on every rank, before any early return
        named = {f"loss_{k}": v for k, v in out.losses.items()} | dict(out.metrics)
        values = self.dist.mean(
            torch.stack([v.detach().float().reshape(()) for v in named.values()])).tolist()
        scalars = dict(zip(named, values))
        for k, v in scalars.items():
            if not math.isfinite(v):
                return scalars, f"{k}={v}"
        bad = guard(scalars) if guard is not None else None
        if bad is not None:
            return scalars, bad
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        total = cast(torch.Tensor, sum(out.losses.values()))
        total.backward()  # each optimiser owns its own parameters
        for name, opt in self.optimizers.items():
            spec = self.specs[name]
            self.dist.average_gradients(spec.params)
            if spec.grad_transform is not None:
                for p in spec.params:
                    if p.grad is not None:
                        p.grad = spec.grad_transform(p.grad)
            clip = spec.grad_clip
            if clip > 0:
                scalars[f"grad_norm_{name}"] = float(
                    torch.nn.utils.clip_grad_norm_(spec.params, clip))
            opt.step()
        return scalars, None

    def end_epoch(self) -> None:
        """Decay every learning rate by its per-epoch factor."""
        for sch in self.schedulers.values():
            sch.step()

    def scale_learning_rates(self, factor: float) -> None:
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] *= factor

    def learning_rates(self) -> dict[str, float]:
        return {f"lr_{k}": o.param_groups[0]["lr"] for k, o in self.optimizers.items()}
