"""Seconds per training iteration: the multi-stage NCE prior against LEBM, in one run.

    python benchmarks/nce_speed.py --preset mnist --threads 2

One iteration of each (``lebm.train.Learner.update`` on a fixed random batch, as
``bench_train.py``), alternating, ``--repeats`` rounds: LEBM (``PRESET``: posterior chain,
prior chain, two updates), NCE in its first stage (``nce-PRESET``: no prior chain, the
reference is sampled exactly), and NCE in a later stage with each stage sampler (``langevin``:
the prior chain on the earlier stages' product; ``sir``: importance resampling, no chain).
Medians over rounds; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, time_calls  # noqa: E402
from bench_train import data_shape  # noqa: E402

from lebm.config import build_config  # noqa: E402
from lebm.methods import Batch  # noqa: E402
from lebm.train import Learner  # noqa: E402


def iteration(preset: str, overrides: list[str], stage: int, device: torch.device):
    cfg = build_config(preset, overrides)
    shape = data_shape(cfg)
    torch.manual_seed(0)
    learner = Learner(cfg, device, data_shape=shape)
    for _ in range(stage):
        learner.model.prior.start_stage()
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(cfg.train.batch_size, *shape, generator=g, device=device) * 2 - 1
    return lambda: learner.update(Batch(x), g)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    variants = {
        "lebm": iteration(args.preset, [], 0, device),
        "nce, first stage": iteration(f"nce-{args.preset}", [], 0, device),
        "nce, later stage, langevin": iteration(f"nce-{args.preset}",
                                                ["method.prior_sampler=langevin"], 1, device),
        "nce, later stage, sir": iteration(f"nce-{args.preset}", ["method.prior_sampler=sir"],
                                           1, device),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for name, fn in variants.items():
            times[name] += time_calls(fn, args.iters, 1, device)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"benchmark": "nce_speed", "preset": args.preset, "sec_per_iter": med,
              "ratio_to_lebm": {k: v / med["lebm"] for k, v in med.items()},
              "threads": args.threads, "machine": machine(device)}
    for k, v in med.items():
        print(f"{k:<28} {v:.3f} s/iter  ({v / med['lebm']:.2f} × LEBM)", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(__import__("json").dumps(result, indent=2))
    emit(result)
    return result


if __name__ == "__main__":
    main()
