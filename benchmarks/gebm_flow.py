"""Density estimation with a generalised EBM on a flow base: held-out log-likelihood of the
flow alone and of the energy-corrected model, on the library's tables and a 2-D toy.

    python benchmarks/gebm_flow.py --datasets wine breast-cancer 8gaussians --threads 1

For each data set, presets ``gebm-flow-*`` (a MAF base from ``zuko`` trained by maximum
likelihood, an MLP energy trained by KALE) are trained on the *fit* rows (tables:
``train-fit``, 80 % of the train split; toys: ``train``) for every flow size in ``--widths``,
with a checkpoint every ``--every`` steps. **Selection on validation rows only** (tables:
``valid``, the other 20 % of train; toys: ``valid``): the flow's row takes the (width,
checkpoint) with the best validation ``log g(x)``, the GEBM's row the one with the best
validation ``log q(x)``. Then, once, the test split: mean ``log g`` and ``log q`` per example
with their standard errors over examples, the paired difference at the GEBM's checkpoint,
and the standard error of the Monte-Carlo ``log Z`` (``--n-partition`` base samples).

Nats per example, in the standardised feature space of ``lebm.data`` (tables: train-row
mean and std). Writes ``OUT/gebm_flow.json`` and ``.md``; reruns reuse finished runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

PRESET = {"wine": "gebm-flow-wine", "breast-cancer": "gebm-flow-breast-cancer",
          "8gaussians": "gebm-flow-toy2d"}
TABLES = ("wine", "breast-cancer")


def train(run: Path, preset: str, width: int, steps: int, every: int, threads: int,
          fit_split: str, seed: int) -> None:
    """Train one candidate; a run that stops on divergence keeps its earlier checkpoints
    (and a ``failed.json`` saying where it stopped)."""
    if (run / "checkpoints" / f"step_{steps:08d}").is_dir() or (run / "failed.json").is_file():
        return
    cmd = [sys.executable, "-m", "lebm.cli", "train", preset, "--run-dir", str(run),
           "--overwrite", "--max-steps", str(steps), "--seed", str(seed), "--no-progress",
           "--set", f"train.threads={threads}", "--set", f"train.checkpoint_every={every}",
           "--set", "train.keep_checkpoints=100000", "--set", f"data.train_split={fit_split}",
           "--set", f"model.flow_hidden={width},{width}", "--set", "train.sample_every=100000"]
    print(" ".join(cmd[3:]), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], flush=True)
        (run / "failed.json").write_text(json.dumps({"returncode": done.returncode,
                                                     "stderr": done.stderr[-2000:]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=list(PRESET), choices=list(PRESET))
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--n-partition", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/gebm_flow")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(args.threads)
    import lebm
    from lebm.data import load_dataset

    def examples(ds: str, split: str) -> torch.Tensor:
        d = load_dataset(ds, split)
        return d.batch(torch.arange(len(d)))

    def ll(run: Path, step: int, x: torch.Tensor) -> dict:
        model = lebm.load(run / "checkpoints" / f"step_{step:08d}")
        r = model.log_likelihood(x, torch.Generator().manual_seed(args.seed + 7),
                                 n_partition=args.n_partition)
        return {k: (v.double() if torch.is_tensor(v) else v) for k, v in r.items()}

    results = {}
    for ds in args.datasets:
        fit, valid = ("train-fit", "valid") if ds in TABLES else ("train", "valid")
        x_valid, x_test = examples(ds, valid), examples(ds, "test")
        candidates = []
        for width in args.widths:
            run = out / "runs" / f"{ds}-w{width}"
            train(run, PRESET[ds], width, args.steps, args.every, args.threads, fit, args.seed)
            for step in range(args.every, args.steps + 1, args.every):
                if not (run / "checkpoints" / f"step_{step:08d}").is_dir():
                    continue  # a run stopped by divergence
                r = ll(run, step, x_valid)
                candidates.append({"width": width, "step": step, "run": str(run),
                                   "valid_flow": float(r["base_ll"].mean()),
                                   "valid_gebm": float(r["ll"].mean()),
                                   "valid_log_z_se": r["log_z_se"]})
                print(ds, candidates[-1], flush=True)

        def finite(c: dict, key: str) -> float:
            return c[key] if math.isfinite(c[key]) else -math.inf

        best = {"flow": max(candidates, key=lambda c: finite(c, "valid_flow")),
                "gebm": max(candidates, key=lambda c: finite(c, "valid_gebm"))}
        row = {"fit_split": fit, "valid_split": valid, "n_valid": len(x_valid),
               "n_test": len(x_test), "candidates": candidates}
        for name, c in best.items():
            r = ll(Path(c["run"]), c["step"], x_test)
            key = "base_ll" if name == "flow" else "ll"
            v = r[key]
            row[name] = {"width": c["width"], "step": c["step"], "test_ll": float(v.mean()),
                         "test_se": float(v.std() / math.sqrt(len(v)))}
            if name == "gebm":
                diff = r["ll"] - r["base_ll"]
                row["gebm"] |= {"own_flow_test_ll": float(r["base_ll"].mean()),
                                "gain_over_own_flow": float(diff.mean()),
                                "gain_se": float(diff.std() / math.sqrt(len(diff))),
                                "log_z": r["log_z"], "log_z_se": r["log_z_se"]}
        results[ds] = row
        print(ds, {k: row[k] for k in ("flow", "gebm")}, flush=True)
        write(out, args, results, machine(torch.device("cpu")))
    print((out / "gebm_flow.md").read_text())


def write(out: Path, args: argparse.Namespace, results: dict, mach: dict) -> None:
    (out / "gebm_flow.json").write_text(json.dumps(
        {"args": vars(args), "results": results, "machine": mach}, indent=2))
    lines = ["Held-out log-likelihood (nats per example, standardised features; higher is "
             "better). Flow width and checkpoint chosen on validation rows, each model "
             "separately; test scored once.", "",
             "| data | n test | flow (MAF) | GEBM (MAF + energy) | GEBM − its own flow | "
             "log Z se |", "|---|---|---|---|---|---|"]
    for ds, r in results.items():
        f, g = r["flow"], r["gebm"]
        lines.append(
            f"| {ds} | {r['n_test']} | {f['test_ll']:.3f} ± {f['test_se']:.3f} (w {f['width']}, "
            f"step {f['step']}) | {g['test_ll']:.3f} ± {g['test_se']:.3f} (w {g['width']}, "
            f"step {g['step']}) | {g['gain_over_own_flow']:+.3f} ± {g['gain_se']:.3f} | "
            f"{g['log_z_se']:.4f} |")
    lines += ["", f"Machine: {mach['cpu']}, {mach['threads']} thread(s), torch {mach['torch']}."]
    (out / "gebm_flow.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
