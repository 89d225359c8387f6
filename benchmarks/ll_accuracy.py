"""Accuracy of lebm's log p(x) estimators on linear-Gaussian models, where log p(x) is exact.

    python benchmarks/ll_accuracy.py                       # the three cases, both methods
    python benchmarks/ll_accuracy.py --methods ais --n-temps 50 100 200

A model ``x = W z + b + ε``, ``z ~ N(0, I_d)``, ``ε ~ N(0, σ² I_D)`` (``LatentEBM`` with a
linear generator, ``prior=gaussian``, the training posterior chain of the presets: 20
Langevin steps of size 0.1), ``W`` with N(0, 1/d) entries, σ = 0.3, and ``n`` examples drawn
from it. For each estimator setting: the mean error against the exact ``log p(x)`` (the
bias, with its standard error over examples), the RMSE, the share of examples whose
exact value lies within 2 reported standard errors, and the seconds. Cases ``d/D`` = 3/6,
16/64 and 16/256, as in issue 16. The last line printed is one JSON object; ``--out``
writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine  # noqa: E402

from lebm.evaluate import log_likelihood  # noqa: E402
from lebm.models import ChainConfig, LatentEBM, ModelConfig  # noqa: E402

CASES = ((3, 6), (16, 64), (16, 256))


def linear_model(d: int, big_d: int, sigma: float, seed: int) -> tuple[LatentEBM, torch.Tensor,
                                                                         torch.Tensor]:
    """The model, its weight and bias."""
    g = torch.Generator().manual_seed(seed)
    cfg = ModelConfig(n_z=d, generator="mlp", gen_widths=(), gen_output="identity",
                      prior="gaussian", sigma=sigma, data_shape=(big_d,),
                      posterior_chain=ChainConfig(n_steps=20, step_size=0.1))
    model = LatentEBM(cfg)
    w = torch.randn(big_d, d, generator=g) / d**0.5
    bias = 0.1 * torch.randn(big_d, generator=g)
    with torch.no_grad():
        model.generator.net[0].weight.copy_(w)
        model.generator.net[0].bias.copy_(bias)
    return model, w, bias


def exact_and_data(w: torch.Tensor, bias: torch.Tensor, sigma: float, n: int,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    marginal = torch.distributions.MultivariateNormal(
        bias, w @ w.T + sigma**2 * torch.eye(len(bias)))
    torch.manual_seed(seed)
    x = marginal.sample((n,))
    return x, marginal.log_prob(x)


def evaluate_setting(d: int, big_d: int, sigma: float, n: int, seed: int,
                     **kw: object) -> dict:
    model, w, bias = linear_model(d, big_d, sigma, seed)
    x, exact = exact_and_data(w, bias, sigma, n, seed + 1)
    t0 = time.perf_counter()
    ll, se = log_likelihood(model, x, torch.Generator().manual_seed(seed + 2), **kw)
    seconds = time.perf_counter() - t0
    err = (ll - exact).double()
    return {"d": d, "D": big_d, "settings": {k: v for k, v in kw.items()},
            "bias": float(err.mean()), "bias_se": float(err.std() / n**0.5),
            "rmse": float(err.pow(2).mean().sqrt()), "mean_reported_se": float(se.mean()),
            "within_2se": float((err.abs() <= 2 * se.double()).float().mean()),
            "seconds": seconds}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", nargs="+", default=["is", "ais"], choices=["is", "ais"])
    ap.add_argument("--n-temps", type=int, nargs="+", default=[500])
    ap.add_argument("--n-samples", type=int, nargs="+", default=[32])
    ap.add_argument("--is-samples", type=int, default=256, help="draws of the plain IS rows")
    ap.add_argument("--n", type=int, default=100, help="examples per case")
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for d, big_d in CASES:
        for method in args.methods:
            grid = ([{"n_samples": args.is_samples}] if method == "is" else
                    [{"n_samples": s, "n_temps": t} for s in args.n_samples for t in args.n_temps])
            for kw in grid:
                row = evaluate_setting(d, big_d, args.sigma, args.n, args.seed, method=method,
                                       **kw)
                rows.append(row)
                print(f"d={d:>2} D={big_d:>3} {method:>3} {kw}: bias {row['bias']:+.3f} "
                      f"± {row['bias_se']:.3f}, rmse {row['rmse']:.3f}, within 2 SE "
                      f"{100 * row['within_2se']:.0f} %, {row['seconds']:.1f} s", flush=True)
    result = {"benchmark": "ll_accuracy", "sigma": args.sigma, "n": args.n, "rows": rows,
              "command": " ".join(["benchmarks/ll_accuracy.py", *(argv or sys.argv[1:])]),
              "machine": machine(torch.device("cpu"))}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    emit(result)
    return result


if __name__ == "__main__":
    main()
