"""How many CPU threads a training process uses.

Measured on this project's 2-core CPU (``benchmarks/bench_train.py``, one busy process on
the other core for "contended"; README):

    preset   generator FLOPs / batch   idle: 2 / 1 threads   contended: 2 / 1 threads
    digits         17 M                  0.041 / 0.044 s       0.082 / 0.044 s
    mnist        1345 M                  0.338 / 0.549 s       1.116 / 0.607 s

A small model gains nothing from a second thread and loses half its speed when another
process wants that core; a conv model gains 1.6× from it. So ``train.threads = 0`` (auto)
uses one thread when one generator forward of a batch costs under ``SMALL_STEP_FLOPS``, and
torch's default (every core, or ``OMP_NUM_THREADS``) otherwise; ``train.threads = N``
overrides. The choice depends on the config only, so a resumed run uses the same count.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils.flop_counter import FlopCounterMode

from lebm.models import LatentModel

SMALL_STEP_FLOPS = 1e8


def generator_flops(model: LatentModel, batch_size: int) -> int:
    """Multiply-add FLOPs of one generator forward on a batch (counted, not timed)."""
    z = torch.zeros(batch_size, model.latent.dim, device=model.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        if model.reads_data:  # sentences: count 20 tokens of the data's first id
            model.generator(z, torch.zeros(batch_size, 20, dtype=torch.long,
                                           device=model.device))
        else:
            model.generator(z)
    return int(counter.get_total_flops())


def choose_threads(requested: int, model: LatentModel, batch_size: int) -> int:
    """``requested`` if set; else 1 for a small model on CPU, else torch's default."""
    if requested:
        return requested
    default = torch.get_num_threads()
    if model.device.type != "cpu" or default == 1:
        return default
    return 1 if generator_flops(model, batch_size) < SMALL_STEP_FLOPS else default


@contextlib.contextmanager
def using_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch CPU threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
