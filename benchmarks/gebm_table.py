"""Generalised EBMs: samples of the energy-corrected model against the base generator's,
on the same trained networks, for every kernel and a few chain lengths (MNIST, Fashion-MNIST).

    python benchmarks/gebm_table.py --datasets mnist fashion-mnist --steps 30000 --threads 1

1. Trains ``gebm-<dataset>`` for ``--steps`` steps (resumed if its run folder exists).
2. **Tuning, on training images only.** For each kernel (Langevin, MALA, HMC, kinetic
   Langevin) the step size is chosen from ``--grid`` by FD-MNIST of ``--n-tune`` samples at
   the longest chain length against the last 10,000 *training* images (MNIST's ``valid``
   split): nothing here sees the test split. When the best step size is at an end of
   the grid, the grid is extended past that end by doubling or halving (at most twice).
3. **Report, once.** With the chosen step sizes, FD-MNIST of ``--n-samples`` samples against
   the test split for chain lengths ``--lengths`` (0 = the base generator alone, the same
   for every kernel), the seconds per 1,000 samples (wall clock, ``--threads`` threads) and,
   for MALA and HMC, the mean acceptance.

FD-MNIST is the Fréchet distance in the library's MNIST classifier features (on
Fashion-MNIST it is still a distance between image distributions, in features not trained
for clothes). Writes ``OUT/gebm_table.json`` and ``.md``; rerunning reuses training and
every scored cell. One process per dataset (``--datasets mnist`` and ``--datasets
fashion-mnist`` side by side) may share ``--out``: each merges the other's results.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402

KERNELS = ("langevin", "mala", "hmc", "kinetic")
GRID = {"langevin": (0.02, 0.05, 0.1, 0.2), "mala": (0.05, 0.1, 0.2, 0.4),
        "hmc": (0.02, 0.05, 0.1, 0.2), "kinetic": (0.05, 0.1, 0.2, 0.4)}


def train(run: Path, preset: str, steps: int, threads: int, seed: int) -> None:
    if (run / "checkpoints").is_dir():
        cmd = ["resume", str(run), "--max-steps", str(steps), "--no-progress"]
    else:
        cmd = ["train", preset, "--run-dir", str(run), "--max-steps", str(steps),
               "--seed", str(seed), "--no-progress", "--set", f"train.threads={threads}"]
    cfg = json.loads((run / "config.json").read_text())["config"] \
        if (run / "config.json").is_file() else None
    if cfg is not None and cfg.get("train", {}).get("max_steps") == steps and \
            (run / "checkpoints" / f"step_{steps:08d}").is_dir():
        return
    print("train:", " ".join(cmd), flush=True)
    subprocess.run([sys.executable, "-m", "lebm.cli", *cmd], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    ap.add_argument("--steps", type=int, default=30_000)
    ap.add_argument("--lengths", type=int, nargs="+", default=[0, 20, 100])
    ap.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=KERNELS)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--n-tune", type=int, default=2000)
    ap.add_argument("--retime", type=int, metavar="N", help="only time every scored cell "
                    "again with N samples (run it with nothing else busy on the machine: the "
                    "cells' own timings share it with whatever ran beside them)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="benchmarks/results/gebm")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "gebm_table.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    cells: dict = record.get("cells", {})
    spread: dict = record.get("spread", {})  # FD of the base alone on 3 more sample seeds
    tuned: dict = record.get("tuned", {})
    trials_done: dict = record.get("trials", {})  # tuning points of unfinished kernels

    for ds in args.datasets:
        train(out / "runs" / f"gebm-{ds}", f"gebm-{ds}", args.steps, args.threads, args.seed)

    import torch

    torch.set_num_threads(args.threads)
    import lebm
    from lebm.data import load_dataset
    from lebm.metrics import MNISTFeatures, stats_for

    features = MNISTFeatures()

    def write() -> None:
        merged_write(out, {"steps": args.steps, "n_samples": args.n_samples,
                           "n_tune": args.n_tune, "lengths": args.lengths, "grid": GRID,
                           "tuned": tuned, "trials": trials_done, "cells": cells,
                           "spread": spread,
                           "machine": machine(torch.device("cpu"))}, args.datasets)

    if args.retime:
        for ds in args.datasets:
            retime(lebm.load(out / "runs" / f"gebm-{ds}").eval(), cells, ds, args.retime,
                   args.seed)
            write()
        print((out / "gebm_table.md").read_text())
        return

    for ds in args.datasets:
        run = out / "runs" / f"gebm-{ds}"
        model = lebm.load(run)
        model.eval()
        train_set, test_set = load_dataset(ds, "train"), load_dataset(ds, "test")
        n_train = len(train_set)
        ref = {"valid": stats_for(train_set.batch(torch.arange(n_train - 10_000, n_train)),
                                  features),
               "test": stats_for(test_set.batch(torch.arange(len(test_set))), features)}
        longest = max(args.lengths)

        for kernel in args.kernels:  # tuning on training images (the valid split)
            key = f"{ds}/{kernel}"
            entry = tuned.get(key)  # tuned before: extended if its best sits at the top
            trials = entry["valid_fd"] if entry else trials_done.setdefault(key, {})
            while (step := next_step(trials, GRID[kernel])) is not None:
                trials[str(step)] = score(model, ref["valid"], features, kernel, longest,
                                          step, args.n_tune, args.seed + 100)["fd"]
                print(key, step, trials[str(step)], flush=True)
                write()  # each tuning point survives an interruption
            best = float(min(trials, key=lambda s: trials[s]))
            if entry:
                entry["step_size"] = best
            else:
                tuned[key] = {"step_size": best, "valid_fd": dict(trials)}
                del trials_done[key]
            write()
        for kernel in args.kernels:  # the report, on the test split
            for length in args.lengths:
                key = f"{ds}/{'base' if length == 0 else kernel}/{length}"
                step = tuned[f"{ds}/{kernel}"]["step_size"]
                if key in cells and (length == 0 or cells[key]["step_size"] == step):
                    continue  # scored (a cell of an earlier step size is scored again)
                cells[key] = {"dataset": ds, "kernel": kernel if length else "base",
                              "length": length, "step_size": step if length else None,
                              **score(model, ref["test"], features, kernel, length, step,
                                      args.n_samples, args.seed)}
                print(key, cells[key], flush=True)
                write()
        key = f"{ds}/base"  # the FD's own noise: the base alone on other sample seeds
        if key not in spread:
            spread[key] = [score(model, ref["test"], features, "base", 0, 0.0, args.n_samples,
                                 args.seed + k)["fd"] for k in range(1, 4)]
            write()
    write()
    print((out / "gebm_table.md").read_text())


EXTEND = 2  # doublings (halvings) past a grid's end while the best step size sits there


def next_step(trials: dict[str, float], grid: tuple[float, ...]) -> float | None:
    """The next step size to try on the validation images: the grid's first untried one;
    once all are tried, double the best while it is the largest tried, halve it while it is
    the smallest (at most ``EXTEND`` times past either end: an optimum at the grid's edge
    may not be one); else ``None``."""
    for step in grid:
        if str(step) not in trials:
            return step
    best = float(min(trials, key=lambda s: trials[s]))
    tried = [float(s) for s in trials]
    if best == max(tried) and best < grid[-1] * 2 ** EXTEND:
        return best * 2
    if best == min(tried) and best > grid[0] / 2 ** EXTEND:
        return best / 2
    return None


def merged_write(out: Path, result: dict, datasets: list[str]) -> None:
    """Write ``OUT/gebm_table.json`` and ``.md`` from ``result``, first merging in what is on
    disk (under a lock): one process per dataset may share ``OUT`` because every key of
    ``cells``, ``tuned``, ``trials`` and ``spread`` starts with its dataset. For ``datasets``
    (this process's) our entries win; for every other dataset the disk's do (another process
    may have moved on since we read them). ``result``'s dicts are updated in place, and
    trials of a tuned kernel are dropped."""
    path = out / "gebm_table.json"
    with open(out / ".gebm_table.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disk = json.loads(path.read_text()) if path.is_file() else {}
        for name in ("cells", "tuned", "trials", "spread"):
            result.setdefault(name, {})
            for key, value in disk.get(name, {}).items():
                if key.split("/")[0] in datasets:
                    result[name].setdefault(key, value)
                else:
                    result[name][key] = value
        for key in list(result["trials"]):
            if key in result["tuned"]:
                del result["trials"][key]
        path.write_text(json.dumps(result, indent=2))
        datasets = list(dict.fromkeys(c["dataset"] for c in result["cells"].values()))
        (out / "gebm_table.md").write_text(markdown(result, datasets))


def score(model, ref, features, kernel: str, length: int, step: float, n: int,
          seed: int) -> dict:
    """FD of ``n`` samples (chain ``kernel`` × ``length`` at ``step``; 0 = the base) against
    the reference statistics ``ref``, the sampling seconds per 1,000 samples, acceptance."""
    from lebm.metrics import fid

    x, acc, sec_per_1000 = _timed_draw(model, n, seed, kernel, length, step)
    return {"fd": fid(x, ref, features), "sec_per_1000": sec_per_1000, "acceptance": acc}


def retime(model, cells: dict, ds: str, n: int, seed: int) -> None:
    """Time every scored cell of ``ds`` again with ``n`` samples (the FD stays): each
    cell's ``sec_per_1000`` becomes this measurement, marked ``timed_alone``."""
    for key, c in cells.items():
        if c["dataset"] != ds:
            continue
        c["sec_per_1000"] = _timed_draw(model, n, seed, c["kernel"], c["length"],
                                        c["step_size"])[2]
        c["timed_alone"] = n
        print(key, f"{c['sec_per_1000']:.2f} s / 1000", flush=True)


def _timed_draw(model, n: int, seed: int, kernel: str, length: int, step: float | None
                ) -> tuple[object, float | None, float]:
    """``n`` samples (chain ``kernel`` × ``length`` at ``step``; length 0 = the base alone),
    the mean Metropolis acceptance and the sampling seconds per 1,000 samples."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    if length == 0:
        x, acc = model.sample(n, g, n_steps=0), None
    else:
        x, acc = _sample(model, n, g, kernel, length, step)
    return x, acc, 1000 * (time.perf_counter() - t) / n


def _sample(model, n: int, g, kernel: str, length: int, step: float
            ) -> tuple[object, float | None]:
    """``n`` samples through the latent chain, with the mean Metropolis acceptance."""
    import torch

    xs, accs = [], []
    for start in range(0, n, 500):
        m = min(500, n - start)
        z, trace = model.sample_latent(m, g, kernel=kernel, n_steps=length, step_size=step,
                                       record=kernel in ("mala", "hmc"))
        if trace is not None and trace.acceptance is not None:
            accs.append(float(trace.acceptance.mean()))
        xs.append(model.decode(z))
    return torch.cat(xs), (sum(accs) / len(accs) if accs else None)


def markdown(result: dict, datasets: list[str]) -> str:
    lines = [f"GEBM samples against the base generator's: FD-MNIST ({result['n_samples']} "
             f"samples vs the test split; lower is better) after {result['steps']} training "
             "steps. Step sizes chosen on the valid split (training images), "
             f"{result['n_tune']} samples at the longest chain.", ""]
    for ds in datasets:
        rows = [c for c in result["cells"].values() if c["dataset"] == ds]
        if not rows:
            continue
        lines += [f"### {ds}", "", "| sampler | steps | step size | FD-MNIST | s / 1000 samples "
                  "| acceptance |", "|---|---|---|---|---|---|"]
        for c in sorted(rows, key=lambda c: (c["kernel"] != "base", c["kernel"], c["length"])):
            acc = "" if c["acceptance"] is None else f"{c['acceptance']:.2f}"
            step = "" if c["step_size"] is None else f"{c['step_size']:g}"
            lines.append(f"| {c['kernel']} | {c['length']} | {step} | {c['fd']:.1f} | "
                         f"{c['sec_per_1000']:.2f} | {acc} |")
        noise = result.get("spread", {}).get(f"{ds}/base")
        if noise:
            lines += ["", f"The base alone on three other sample seeds: FD-MNIST "
                      f"{' / '.join(f'{v:.1f}' for v in noise)} (the metric's sampling "
                      "noise at this sample size)."]
        lines.append("")
    m = result["machine"]
    alone = {c.get("timed_alone") for c in result["cells"].values()}
    if alone == {None}:
        timing = ("Seconds per 1,000 samples: wall clock while the table was scored, beside "
                  "other jobs on the machine (a second timing pass alone is `--retime`).")
    else:
        sizes = ", ".join(str(a) for a in sorted(alone - {None}))
        rest = "; cells without it: wall clock beside other jobs." if None in alone else "."
        timing = ("Seconds per 1,000 samples: a separate timing pass (`--retime`, "
                  f"{sizes} samples, no training or scoring beside it; one timing process per "
                  f"dataset, one per core){rest}")
    lines.append(timing)
    lines.append(f"Machine: {m['cpu']}, {m['threads']} torch thread(s), torch {m['torch']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
