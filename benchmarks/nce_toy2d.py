"""The multi-stage NCE prior on the 2-D toy, stage by stage, against the aggregate posterior.

    python benchmarks/nce_toy2d.py          # writes benchmarks/results/nce_toy2d/

Trains ``nce-toy2d`` (8 Gaussians, 2-D latent) and, for comparison, the LEBM ``toy2d``
preset with the same seed, checkpointing at every stage decision. At each checkpoint: the
aggregate posterior ``q(z)`` (posterior draws of 4,000 training points) binned on a 60×60
grid over [−4, 4]², the learned prior normalised on the same grid, and ``KL(q ‖ p̂)``
between the two binned distributions (bins with q > 0; a little smoothing of p̂ so a bin
it misses costs a large but finite amount). One figure per run: the prior after each
stage with the posterior draws over it. One thread per run.
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

import lebm  # noqa: E402
from lebm.config import build_config  # noqa: E402
from lebm.run import load_data  # noqa: E402
from lebm.train import Trainer  # noqa: E402

EXTENT, BINS = 4.0, 60


def binned(z: torch.Tensor) -> torch.Tensor:
    """Fractions of ``z`` per grid bin, ``(BINS, BINS)`` (rows = y)."""
    idx = ((z + EXTENT) / (2 * EXTENT) * BINS).long().clamp(0, BINS - 1)
    counts = torch.zeros(BINS, BINS)
    counts.index_put_((idx[:, 1], idx[:, 0]), torch.ones(len(z)), accumulate=True)
    return counts / len(z)


def prior_on_grid(model) -> torch.Tensor:
    centres = (torch.arange(BINS) + 0.5) / BINS * 2 * EXTENT - EXTENT
    grid = torch.stack(torch.meshgrid(centres, centres, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        logp = model.prior_log_density(grid).reshape(BINS, BINS)
    return torch.softmax(logp.flatten().double(), 0).reshape(BINS, BINS).float()


def kl_binned(q: torch.Tensor, p: torch.Tensor, floor: float = 1e-6) -> float:
    p = (p + floor) / (p + floor).sum()
    keep = q > 0
    return float((q[keep] * (q[keep] / p[keep]).log()).sum())


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--stage-steps", type=int, default=375)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/nce_toy2d"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    result: dict = {"benchmark": "nce_toy2d", "runs": {}, "machine": machine(torch.device("cpu")),
                    "settings": {k: str(v) for k, v in vars(args).items()}}
    pictures = {}
    for preset in ("nce-toy2d", "toy2d"):
        run = args.out / "runs" / preset
        sets = [f"train.checkpoint_every={args.stage_steps}", "train.keep_checkpoints=100",
                "train.progress=false", "train.threads=1"]
        if preset.startswith("nce"):
            sets.append(f"method.stage_steps={args.stage_steps}")
        cfg = build_config(preset, sets, **{"train.max_steps": args.steps,
                                            "train.seed": args.seed})
        t0 = time.perf_counter()
        Trainer(cfg, run, overwrite=True).fit()
        seconds = time.perf_counter() - t0
        data = load_data(cfg, "train", limit=4000)
        x = data.batch(torch.arange(len(data)))
        rows = []
        for ckpt in sorted((run / "checkpoints").glob("step_*")):
            model = lebm.load(ckpt)
            z = model.infer(x, torch.Generator().manual_seed(1))
            q = binned(z)
            p = prior_on_grid(model)
            stages = int(model.prior.stages) if hasattr(model.prior, "stages") else None
            rows.append({"step": int(ckpt.name[5:]), "stages": stages,
                         "kl_q_to_prior": kl_binned(q, p)})
            pictures[(preset, rows[-1]["step"])] = (p, z)
            print(preset, rows[-1], flush=True)
        result["runs"][preset] = {"seconds": seconds, "checkpoints": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    _figure(pictures, result, args.out / "nce_toy2d.png")
    (args.out / "nce_toy2d.json").write_text(json.dumps(result, indent=2))
    emit(result)
    return result


def _figure(pictures: dict, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(result["runs"])
    steps = sorted({s for _, s in pictures})
    show = [s for s in steps if s > 0][:: max(1, len(steps) // 5)][:5]
    fig, axes = plt.subplots(len(runs), len(show), figsize=(2.6 * len(show), 2.7 * len(runs)),
                             squeeze=False)
    for i, preset in enumerate(runs):
        kls = {r["step"]: r for r in result["runs"][preset]["checkpoints"]}
        for j, step in enumerate(show):
            p, z = pictures[(preset, step)]
            ax = axes[i][j]
            ax.imshow(p.numpy(), origin="lower", extent=(-EXTENT, EXTENT, -EXTENT, EXTENT),
                      cmap="viridis")
            ax.scatter(z[:800, 0], z[:800, 1], s=1, c="white", alpha=0.5)
            stage = kls[step]["stages"]
            ax.set_title(f"{preset}, step {step}" + (f", {stage} stage(s)" if stage else "")
                         + f"\nKL(q‖p̂) {kls[step]['kl_q_to_prior']:.2f}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
