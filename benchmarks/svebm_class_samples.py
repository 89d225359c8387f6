"""Symbol-conditional generation of an MNIST SV-EBM run against prior-chain length.

    python benchmarks/svebm_class_samples.py RUN --steps 60 200 1000 --n 50

For each chain length and each class k, draws ``--n`` samples with ``lebm sample RUN
--class k --steps S`` (Langevin on ``f_k(z) − ‖z‖²/(2σ0²)``, then the generator) and reports
the fraction that the MNIST classifier of ``lebm.metrics`` (99 % test accuracy) assigns to
class k. Writes ``OUT/class_samples.json`` and a grid (one row per class, longest chain)
``OUT/class_samples.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--steps", type=int, nargs="+", default=[60, 200, 1000])
    ap.add_argument("--n", type=int, default=50, help="samples per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/svebm_class_samples")
    args = ap.parse_args()

    import lebm
    from lebm.metrics import accuracy
    from lebm.metrics.features import MNISTFeatures
    from lebm.viz import save_image_grid

    model, clf = lebm.load(args.run), MNISTFeatures().eval()
    k_classes = model.config.n_classes
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"run": args.run, "n_per_class": args.n, "seed": args.seed,
                    "default_steps": model.config.prior_chain.n_steps, "accuracy": {},
                    "per_class": {}, "seconds": {}}
    grid, longest = [], max(args.steps)
    for steps in args.steps:
        t0, hits = time.perf_counter(), []
        for k in range(k_classes):
            gen = torch.Generator().manual_seed(args.seed + k)
            x = model.sample(args.n, gen, n_steps=steps, class_=k).detach()
            with torch.no_grad():
                hits.append(accuracy(clf.logits(x), torch.full((args.n,), k)))
            if steps == longest:
                grid.append(x[:10])
        result["per_class"][str(steps)] = hits
        result["accuracy"][str(steps)] = sum(hits) / len(hits)
        result["seconds"][str(steps)] = time.perf_counter() - t0
        print(f"{steps} steps: {100 * result['accuracy'][str(steps)]:.1f} % of samples are "
              "their class", flush=True)
    save_image_grid(torch.cat(grid), out / "class_samples.png", nrow=10)
    result["machine"] = machine(torch.device("cpu"))
    (out / "class_samples.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
