"""Seconds per training iteration: posterior MCMC against an inference network, side by side.

    python benchmarks/joint_speed.py --family svhn --iters 5 --threads 2
    python benchmarks/joint_speed.py --family mnist --iters 20 --threads 1

For a data family (``svhn``, ``cifar10``, ``celeba64``, ``mnist``, ``fashion-mnist``,
``digits``) times one ``lebm train`` iteration (chains, losses, backward, Adam; random data
of the preset's shape, as ``bench_train.py``) of ``joint-F`` (posterior Langevin, the
CVPR'23 MLE), ``joint-inf-F`` (the inference network in its place), and with ``--twins`` also
``abp-joint-F`` and ``vae-joint-F`` (energies off). The variants are timed in interleaved
rounds, one iteration of each per round, so machine load hits them alike; medians and
the ratio to ``joint-F`` are reported. The CVPR'23 paper's own GPU figures for SVHN are
0.478 s (MCMC) and 0.232 s (inference network) per iteration.

The last line printed is one JSON object; ``--out FILE`` also writes it there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, sync  # noqa: E402
from bench_train import build, make_iteration  # noqa: E402

FAMILIES = ("svhn", "cifar10", "celeba64", "mnist", "fashion-mnist", "digits")
PAPER = {"svhn": (0.478, 0.232), "celeba64": (0.920, 0.246), "cifar10": (0.568, 0.256)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--family", default="svhn", choices=FAMILIES)
    ap.add_argument("--iters", type=int, default=5, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--twins", action="store_true", help="also the energy-free twins")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="config override for every variant")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    f = args.family
    presets = [f"joint-{f}", f"joint-inf-{f}"]
    if args.twins:
        presets += [f"abp-joint-{f}", f"vae-joint-{f}"]
    runs = {}
    for p in presets:
        cfg, learner, x, g = build(p, args.overrides, device)
        runs[p] = (cfg, make_iteration(learner, x, g))
    times: dict[str, list[float]] = {p: [] for p in presets}
    for r in range(args.warmup + args.iters):
        for p, (_, iteration) in runs.items():
            sync(device)
            t = time.perf_counter()
            iteration()
            sync(device)
            if r >= args.warmup:
                times[p].append(time.perf_counter() - t)
    med = {p: statistics.median(ts) for p, ts in times.items()}
    base = med[f"joint-{f}"]
    result = {
        "benchmark": "joint_speed", "family": f, "iters": args.iters,
        "sec_per_iter": med, "ratio_to_mcmc": {p: m / base for p, m in med.items()},
        "all_sec": times,
        "config": {p: {"batch_size": cfg.train.batch_size,
                       "latent_sizes": list(cfg.model.latent_sizes),
                       "inference": cfg.model.inference, "prior": cfg.model.prior,
                       "posterior_steps": cfg.model.posterior_chain.n_steps,
                       "prior_steps": cfg.model.prior_chain.n_steps}
                   for p, (cfg, _) in runs.items()},
        "paper_gpu_sec": dict(zip(("mcmc", "inference_network"), PAPER[f])) if f in PAPER
        else None,
        "overrides": args.overrides, "device": str(device), "machine": machine(device),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    emit(result)
    return result


if __name__ == "__main__":
    main()
