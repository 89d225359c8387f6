"""Does the fast path train the same model? MNIST preset, float32 vs fast, side by side.

    python benchmarks/quality_fastpath.py --steps 800 --seeds float32:0 fast:0 fast:1

Trains the ``mnist`` preset once per (variant, seed) with ``lebm train`` (``--jobs``
processes at a time, ``--threads`` each), then evaluates every run the same way, with
float32 chains whatever it was trained with:

* test reconstruction MSE per pixel (images in [-1, 1]) of the first ``--n-test`` MNIST
  test images, ``z`` by the model's posterior Langevin from noise (fixed seed);
* Fréchet distance of ``--n-samples`` prior samples to the 10,000 test images in the
  feature space of an MNIST classifier (``lebm.metrics.MNISTFeatures``; "FD-MNIST",
  not Inception FID);
* training seconds per step (wall time of the run / steps; runs share the machine).

Writes ``OUT/quality_fastpath.json`` and ``.md``; finished runs are reused on a rerun.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import FAST, FLOAT32, train_runs  # noqa: E402

VARIANTS = {"float32": FLOAT32, "fast": FAST}


def train_all(out: Path, steps: int, runs: list[tuple[str, int]], jobs: int,
              threads: int) -> dict:
    todo = []
    for variant, seed in runs:
        run = out / "runs" / f"{variant}-s{seed}"
        cmd = [sys.executable, "-m", "lebm.cli", "train", "mnist", "--run-dir", str(run),
               "--max-steps", str(steps), "--seed", str(seed), "--overwrite",
               "--no-progress", "--set", f"threads={threads}"]
        for s in VARIANTS[variant]:
            cmd += ["--set", s]
        todo.append((run, cmd, steps))
    return train_runs(todo, jobs)


def evaluate(run: Path, n_test: int, n_samples: int, test_x, test_stats, feats) -> dict:
    import lebm
    from lebm.metrics import FeatureStats, frechet_distance

    model = lebm.load(run)
    model.config.precision.chain_dtype, model.config.precision.channels_last = "float32", False
    g = torch.Generator().manual_seed(1234)
    mses = []
    for i in range(0, n_test, 500):
        xb = test_x[i:min(i + 500, n_test)]
        mses.append(((model.reconstruct(xb, g) - xb) ** 2).flatten(1).mean(1))
    mse = torch.cat(mses).mean().item()
    samples = model.sample(n_samples, g, batch_size=500)
    fd = frechet_distance(FeatureStats.of(feats.extract(samples)), test_stats)
    return {"test_mse": mse, "fd_mnist": fd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--seeds", nargs="+", default=["float32:0", "fast:0", "fast:1"],
                    help="runs as VARIANT:SEED (variants: " + ", ".join(VARIANTS) + ")")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--out", default="benchmarks/results/quality_fastpath")
    args = ap.parse_args()
    out = Path(args.out)
    runs = [(v, int(s)) for v, _, s in (item.partition(":") for item in args.seeds)]
    unknown = {v for v, _ in runs} - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variant(s) {sorted(unknown)}; choose from {list(VARIANTS)}")
    walls = train_all(out, args.steps, runs, args.jobs, args.threads)

    from lebm.data import load_dataset
    from lebm.metrics import FeatureStats, MNISTFeatures

    torch.set_num_threads(max(1, args.threads * args.jobs))
    test = load_dataset("mnist", "test")
    test_x = test.batch(torch.arange(len(test)))
    feats = MNISTFeatures()
    test_stats = FeatureStats.of(feats.extract(test_x))
    rows = {}
    for variant, seed in runs:
        name = f"{variant}-s{seed}"
        r = evaluate(out / "runs" / name, args.n_test, args.n_samples, test_x, test_stats,
                     feats)
        r["sec_per_step"] = walls[name]["seconds"] / walls[name]["steps"]
        rows[name] = r
        print(name, r, flush=True)
    summary = {}
    for variant in dict.fromkeys(v for v, _ in runs):
        rs = [rows[f"{v}-s{s}"] for v, s in runs if v == variant]
        summary[variant] = {k: {"mean": statistics.mean(r[k] for r in rs),
                                "std": statistics.stdev(r[k] for r in rs) if len(rs) > 1 else 0.0}
                            for k in ("test_mse", "fd_mnist", "sec_per_step")}
    result = {"command": " ".join(sys.argv), "steps": args.steps, "runs": args.seeds,
              "variants": VARIANTS, "results": rows, "summary": summary,
              "threads_per_run": args.threads, "concurrent_runs": args.jobs,
              "recipe": {"test_mse": f"first {args.n_test} MNIST test images, per pixel, [-1, 1], "
                                     "posterior Langevin (model's K, s) in float32",
                         "fd_mnist": f"{args.n_samples} prior samples vs 10,000 test images, "
                                     "MNISTFeatures 128-d"}}
    (out / "quality_fastpath.json").write_text(json.dumps(result, indent=2))
    lines = ["| variant | runs | test MSE / pixel ([-1, 1]) | FD-MNIST (5k samples) | s / step |",
             "|---|---|---|---|---|"]
    for v, s in summary.items():
        n_runs = sum(1 for v2, _ in runs if v2 == v)
        lines.append(f"| {v} | {n_runs} | "
                     f"{s['test_mse']['mean']:.4f} ± {s['test_mse']['std']:.4f} | "
                     f"{s['fd_mnist']['mean']:.1f} ± {s['fd_mnist']['std']:.1f} | "
                     f"{s['sec_per_step']['mean']:.2f} |")
    (out / "quality_fastpath.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
