"""Shared fixtures: tiny configurations that train in a second or two on CPU."""

from __future__ import annotations

import pytest
import torch

# Tiny digits runs: a small MLP generator/EBM, short chains, 200 training images.
TINY = [
    "data.limit=200",
    "model.n_z=4",
    "model.gen_widths=32",
    "model.energy_widths=16",
    "model.prior_steps=5",
    "model.posterior_steps=5",
    "train.batch_size=50",
    "train.log_every=2",
    "train.sample_every=4",
    "train.checkpoint_every=4",
    "train.n_grid=8",
    "train.progress=false",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


def corrupt_steps(trainer, calls, mutate) -> None:
    """Wrap ``trainer.method.step`` so that on the given call numbers (1-based; every call
    when ``calls`` is None) ``mutate(out)`` damages its output (a NaN loss, a spike)."""
    real_step = trainer.method.step
    count = {"n": 0}

    def step(batch, gen, diagnostics=False):
        out = real_step(batch, gen, diagnostics)
        count["n"] += 1
        if calls is None or count["n"] in calls:
            mutate(out)
        return out

    trainer.method.step = step


def nan_loss(name: str):
    """A ``mutate`` for ``corrupt_steps``: the loss ``name`` becomes NaN."""
    def mutate(out) -> None:
        out.losses[name] = out.losses[name] * float("nan")
    return mutate
