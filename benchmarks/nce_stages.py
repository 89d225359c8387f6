"""Why the NCE prior is learned in stages: one density-ratio classifier against several.

    python benchmarks/nce_stages.py            # JSON and a figure in benchmarks/results/nce_stages

The target is ``q = N(6, 0.5²)``, far from the reference ``N(0, 1)`` in 1-D, where the exact
``KL(q ‖ p̂)`` of a learned prior ``p̂ ∝ N(0, 1) exp(Σ_k r_k)`` can be computed on a grid.
Stage ``k`` is a classifier between ``q`` and the product of the stages before it
(``lebm.methods.nce.fit_stages``), sampled by Langevin or by importance resampling (SIR)
from ``N(0, 1)``. For each sampler and stage count: the final accuracies and ``KL(q ‖ p̂)``.
The figure shows ``q`` and ``p̂`` after each stage. One thread (small networks).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine  # noqa: E402

from lebm.latent import LatentSpec  # noqa: E402
from lebm.methods.nce import fit_stages  # noqa: E402
from lebm.priors import PriorSettings, build_prior  # noqa: E402
from lebm.sampling import Langevin, frozen, run_chain  # noqa: E402

MU, S = 6.0, 0.5
GRID = torch.linspace(-6, 10, 4001)[:, None]


def log_q(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * ((z[:, 0] - MU) / S) ** 2 - math.log(S * math.sqrt(2 * math.pi))


def normalised_log_density(prior) -> torch.Tensor:
    with torch.no_grad():
        lp = prior.log_density(GRID)
        return lp - torch.logsumexp(lp, 0) - math.log(float(GRID[1] - GRID[0]))


def kl_q_to(prior) -> float:
    """``KL(q ‖ p̂)`` by Monte Carlo over q, ``p̂`` normalised on the grid."""
    zq = MU + S * torch.randn(20000, 1, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        log_z = torch.logsumexp(prior.log_density(GRID), 0) + math.log(float(GRID[1] - GRID[0]))
        return float((log_q(zq) - (prior.log_density(zq) - log_z)).mean())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stages", type=int, default=4)
    ap.add_argument("--steps", type=int, default=400, help="classifier steps per stage")
    ap.add_argument("--chain-steps", type=int, default=60)
    ap.add_argument("--step-size", type=float, default=0.3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/nce_stages"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows, curves = [], {}
    for sampler in ("langevin", "sir"):
        torch.manual_seed(0)
        prior = build_prior("nce", LatentSpec((1,)), PriorSettings(max_stages=args.stages,
                                                                  energy_widths=(64, 64)))

        def chain(target, n, g, prior=prior):
            with frozen(prior):
                return run_chain(Langevin(args.step_size), target,
                                 torch.randn(n, 1, generator=g), args.chain_steps,
                                 generator=g)[0]

        g = torch.Generator().manual_seed(0)
        for stage in range(args.stages):
            t0 = time.perf_counter()
            acc = fit_stages(prior, lambda n, g: MU + S * torch.randn(n, 1, generator=g), 1,
                             args.steps, g, batch=128, lr=2e-3, sampler=sampler, chain=chain,
                             start_new=stage > 0)
            row = {"sampler": sampler, "stages": stage + 1, "accuracy": acc[0],
                   "kl_q_to_prior": kl_q_to(prior), "seconds": time.perf_counter() - t0}
            rows.append(row)
            curves[f"{sampler}, {stage + 1} stage(s)"] = normalised_log_density(prior).exp()
            print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    _figure(curves, args.out / "nce_stages.png")
    result = {"benchmark": "nce_stages", "q": f"N({MU}, {S}²)", "reference": "N(0, 1)",
              "rows": rows, "settings": vars(args) | {"out": str(args.out)},
              "machine": machine(torch.device("cpu"))}
    (args.out / "nce_stages.json").write_text(json.dumps(result, indent=2))
    emit(result)
    return result


def _figure(curves: dict[str, torch.Tensor], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
    x = GRID[:, 0].numpy()
    for ax, sampler in zip(axes, ("langevin", "sir")):
        ax.fill_between(x, log_q(GRID).exp().numpy(), color="0.85", label="q = N(6, 0.5²)")
        for name, dens in curves.items():
            if name.startswith(sampler):
                ax.plot(x, dens.numpy(), lw=1.2, label=name.split(", ")[1])
        ax.set_title(f"p̂ ∝ N(0, 1)·exp(Σ r_k), stages sampled by {sampler}")
        ax.set_xlim(-4, 9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
