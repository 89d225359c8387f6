"""Seconds per LEBM training iteration of a preset's configuration, on random data.

    python benchmarks/bench_train.py --preset svhn --iters 10
    python benchmarks/bench_train.py --preset svhn --set chain_dtype=float32 \
        --set channels_last=false --set update_dtype=float32

One iteration is exactly what ``lebm train`` does per step (posterior chain, prior chain,
losses, the trainer's one host sync for the scalars, backward, Adam steps), on a fixed
random batch of the preset's data shape, so no data set is needed. ``--breakdown`` also
times the posterior chain, the prior chain and the update alone. FLOPs per iteration are
counted once with ``torch.utils.flop_counter`` (matmuls and convolutions only).

The last line printed is one JSON object: ``sec_per_iter`` (median), ``device``,
``dtype`` (chain / update), the configuration, FLOPs and achieved GFLOP/s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import count_flops, emit, machine, summary, time_calls  # noqa: E402

from lebm.config import build_config  # noqa: E402
from lebm.methods import Batch  # noqa: E402
from lebm.sampling.precision import resolve_dtype  # noqa: E402
from lebm.train import Learner  # noqa: E402

# shape of one example for each data set a preset may name (no data is loaded)
SHAPES = {"svhn": (3, 32, 32), "cifar10": (3, 32, 32), "mnist": (1, 28, 28),
          "fashion-mnist": (1, 28, 28), "celeba": (3, 64, 64), "digits": (1, 8, 8),
          "8gaussians": (2,), "pinwheel": (2,), "rings": (2,)}


def data_shape(cfg) -> tuple[int, ...]:
    """The shape of one example of ``cfg``'s data set, honouring ``data.image_size``."""
    shape = SHAPES[cfg.data.name]
    if cfg.data.image_size and len(shape) == 3:
        shape = (shape[0], cfg.data.image_size, cfg.data.image_size)
    return shape


def build(preset: str, overrides: list[str], device: torch.device):
    """The preset's ``Learner`` (model, method, optimisers, as ``lebm train`` builds them) and
    a fixed random batch of its data shape (sentences: a fixed random batch of the real
    Penn Treebank training sentences, whose lengths set the cost)."""
    cfg = build_config(preset, overrides)
    g = torch.Generator(device=device).manual_seed(0)
    if cfg.data.name == "ptb":
        from lebm.data import load_dataset

        ds = load_dataset("ptb", "train")
        cfg.model.n_categories = len(ds.vocab)
        idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
        x = ds.batch(idx[:cfg.train.batch_size]).to(device)
        torch.manual_seed(cfg.train.seed)
        return cfg, Learner(cfg, device, data_shape=ds.sample_shape), x, g
    shape = data_shape(cfg)
    torch.manual_seed(cfg.train.seed)
    learner = Learner(cfg, device, data_shape=shape)
    x = torch.rand(cfg.train.batch_size, *shape, generator=g, device=device) * 2 - 1
    return cfg, learner, x, g


def make_iteration(learner: Learner, x: torch.Tensor, g: torch.Generator):
    """Exactly one training update of ``lebm train`` (losses, the one host sync for the
    scalars, backward, optimiser steps)."""
    def iteration() -> None:
        learner.update(Batch(x), g)
    return iteration


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="svhn")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="config override, as for `lebm train`")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time posterior chain, prior chain and update alone")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg, learner, x, g = build(args.preset, args.overrides, device)
    model = learner.model
    iteration = make_iteration(learner, x, g)
    flops = count_flops(iteration)
    times = time_calls(iteration, args.iters, args.warmup, device)
    m = cfg.model
    p = m.precision
    gen = model.generator
    widths = [mod.out_channels for mod in gen.modules()
              if isinstance(mod, torch.nn.ConvTranspose2d)]
    s = summary(times)
    result = {
        "benchmark": "train_iteration", "preset": args.preset, "method": cfg.method_name,
        "sec_per_iter": s["median"], "sec_min": s["min"], "sec_max": s["max"],
        "iters": args.iters, "device": str(device),
        "dtype": {"chain": str(resolve_dtype(p.chain_dtype, device)).removeprefix("torch."),
                  "update": str(resolve_dtype(p.update_dtype, device)).removeprefix("torch.")},
        "channels_last": p.channels_last,
        "config": {"n_z": model.latent.dim, "prior_kernel": m.prior_chain.kernel,
                   "prior_steps": m.prior_chain.n_steps,
                   "posterior_kernel": m.posterior_chain.kernel,
                   "posterior_steps": m.posterior_chain.n_steps,
                   "prior_step_size": m.prior_chain.step_size,
                   "posterior_step_size": m.posterior_chain.step_size, "sigma": m.sigma,
                   "batch_size": cfg.train.batch_size, "generator": m.generator,
                   "generator_channels": widths or list(m.gen_widths),
                   "energy_widths": list(getattr(m, "energy_widths", ()))},
        "gflop_per_iter": flops / 1e9, "gflops_achieved": flops / 1e9 / s["median"],
        "overrides": args.overrides, "machine": machine(device),
    }
    if args.breakdown:
        parts = {
            "posterior_chain": lambda: model.infer_latent(x, g),
            "prior_chain": lambda: model.sample_latent(x.shape[0], g),
        }
        z = model.infer_latent(x, g)[0]

        def update() -> None:
            for opt in learner.optimizers.values():
                opt.zero_grad(set_to_none=True)
            model.likelihood.distance(x, model.generate(z)).mean().backward()
            for opt in learner.optimizers.values():
                opt.step()
        parts["generator_update"] = update
        result["breakdown_sec"] = {
            k: summary(time_calls(fn, max(3, args.iters // 2), 1, device))["median"]
            for k, fn in parts.items()}
    emit(result)
    return result


if __name__ == "__main__":
    main()
