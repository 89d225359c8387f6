"""Which part of the anomaly score separates a held-out digit: reconstruction or prior?

    python benchmarks/anomaly_terms.py benchmarks/results/anomaly_mnist/runs/lebm-d1-s0

The score of ``model.anomaly_score`` is ``−log p̃(x, z) = ‖x − g(z)‖²/(2σ²) − f(z) +
‖z‖²/(2σ0²)`` at the model's posterior ``z``. For a run that held classes out, this infers
``z`` once for the whole test split and reports the AUPRC (held-out classes positive) of
the full score and of each part alone, with the mean and spread of each part — a
diagnostic of where the signal is. Prints one JSON object (and writes it with ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit, machine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--n-test", type=int, help="test images (default all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from lebm.errors import LebmError
    from lebm.evaluate import EvalSettings, Evaluator
    from lebm.metrics import auprc

    ev = Evaluator(args.run_dir, EvalSettings(progress=False, seed=args.seed))
    held = list(ev.cfg.data.exclude_classes)
    if not held:
        raise SystemExit(f"{args.run_dir}: the run held no class out (data.exclude_classes)")
    m = ev.model
    ds = ev.data(ev.test_split, all_classes=True)
    n = len(ds) if args.n_test is None else min(args.n_test, len(ds))
    x = ev.examples(ds, n)
    labels = ds.labels(torch.arange(n))
    if labels is None:
        raise LebmError("the test split has no labels")
    positive = torch.isin(labels, torch.tensor(held))
    g = torch.Generator().manual_seed(args.seed)
    parts: dict[str, list[torch.Tensor]] = {"reconstruction": [], "energy": [], "gaussian": []}
    for i in range(0, n, 500):
        xb = x[i:i + 500]
        z = m.infer(xb, g)
        with torch.no_grad():  # the three terms of −model.log_joint(z, x)
            parts["reconstruction"].append(-m.likelihood.log_prob(xb, m.generator(z)))
            parts["energy"].append(-m.prior.neg_energy(z))
            parts["gaussian"].append(-m.prior.base_log_density(z))
    t = {k: torch.cat(v) for k, v in parts.items()}
    scores = {"full": t["reconstruction"] + t["energy"] + t["gaussian"],
              "reconstruction only": t["reconstruction"],
              "prior only (-f + |z|^2/2)": t["energy"] + t["gaussian"],
              "energy only (-f)": t["energy"]}
    result = {
        "run": str(args.run_dir), "held_out": held, "n_test": n,
        "anomaly_fraction": float(positive.float().mean()),
        "auprc": {k: auprc(v, positive) for k, v in scores.items()},
        "terms": {k: {"mean": float(v.mean()), "std": float(v.std())} for k, v in t.items()},
        "sigma": m.config.sigma, "machine": machine(torch.device("cpu")),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    emit(result)


if __name__ == "__main__":
    main()
