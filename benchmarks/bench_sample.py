"""Images per second of prior sampling plus generation, ``x = g(z)``, ``z`` by prior Langevin.

    python benchmarks/bench_sample.py --preset svhn --n 2000 --batch-size 500

Times ``LatentEBM.sample`` (the preset's prior chain, then one generator pass per batch)
on a freshly initialised model of the preset's configuration: the cost does not depend
on the weights. The last line printed is one JSON object with ``images_per_sec``
(median over ``--repeats``), ``device``, ``dtype``, and the configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine, summary, time_calls  # noqa: E402
from bench_train import data_shape  # noqa: E402

from lebm.config import build_config  # noqa: E402
from lebm.models import LatentEBM  # noqa: E402
from lebm.sampling.precision import resolve_dtype  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="svhn")
    ap.add_argument("--n", type=int, default=2000, help="images per timed call")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = build_config(args.preset, args.overrides)
    cfg.model.data_shape = data_shape(cfg)
    torch.manual_seed(0)
    model = LatentEBM(cfg.model).to(device).eval()
    p, chain = cfg.model.precision, cfg.model.prior_chain
    g = torch.Generator(device=device).manual_seed(0)
    times = time_calls(lambda: model.sample(args.n, g, batch_size=args.batch_size),
                       args.repeats, 1, device)
    s = summary(times)
    m = cfg.model
    result = {
        "benchmark": "sample", "preset": args.preset, "images_per_sec": args.n / s["median"],
        "sec_per_call": s["median"], "n": args.n, "batch_size": args.batch_size,
        "device": str(device),
        "dtype": {"chain": str(resolve_dtype(p.chain_dtype, device)).removeprefix("torch.")},
        "channels_last": p.channels_last, "compile": p.compile,
        "config": {"n_z": m.n_z, "prior_kernel": chain.kernel, "prior_steps": chain.n_steps,
                   "prior_step_size": chain.step_size, "energy_widths": list(m.energy_widths),
                   "generator": m.generator, "ngf": m.ngf},
        "overrides": args.overrides, "machine": machine(device),
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
