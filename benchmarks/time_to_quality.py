"""Time to quality: wall-clock to reach the naive float32 path's quality at N steps, for
each lever (fast path, persistent posterior chains, fewer chain steps), side by side.

    python benchmarks/time_to_quality.py --steps 10000 --targets 2000 10000 --threads 1

Every variant trains the ``--preset`` (default ``mnist``) with its overrides, **all at once**
(one process each, ``--threads`` threads), so they share the machine's load; checkpoints
every ``--checkpoint-every`` steps are kept. A run's clock is the sum of its logged
``sec_per_step`` (sampling and checkpoints included). Every checkpoint is scored on the test
split: MSE (the model's inference on ``--n-test`` digits) and FD-MNIST (``--n-samples`` prior
samples). For each target ``N``, the naive path's MSE and FD at step ``N`` set the bar, and
each variant's time to quality is the clock of its first checkpoint at or below the bar on
**both** metrics; the headline is the ratio naive seconds / variant seconds. Nothing is
tuned on these numbers: the variants are fixed in ``VARIANTS`` before the run. One seed per
call (``--seed``); run it with two seeds to see the spread.

Writes ``OUT/time_to_quality.json``, ``.md`` and ``.png`` (quality against seconds).
Rerunning resumes unfinished runs and reuses scored checkpoints.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    FAST,
    FLOAT32,
    checkpointed_train,
    clock,
    machine,
    mnist_quality,
    plot_quality_vs_minutes,
    run_dir,
    seconds_at,
)

_F32 = [f"model.precision.{s}" for s in FLOAT32]
_FAST = [f"model.precision.{s}" for s in FAST]
# name -> (description, overrides); "naive" is the reference every ratio is against
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "naive": ("float32, posterior chain 20 steps from noise (the papers' path)", _F32),
    "fast": ("bf16 chains and update, channels-last (where the CPU has native bf16)", _FAST),
    "persistent": ("float32, persistent posterior chains, 5 steps per visit",
                   [*_F32, "method.persistent_chains=true", "method.persistent_steps=5"]),
    "fast+persistent": ("the fast path with persistent chains, 5 steps per visit",
                        [*_FAST, "method.persistent_chains=true", "method.persistent_steps=5"]),
    # encoder-initialised chains: a conv q(z|x) learns alongside (by KL to the posterior) and
    # each posterior chain starts from a q sample and runs K steps (K = 0: q alone)
    **{f"encoder-k{k}": (f"float32, posterior chain {k} steps from a learned q(z|x) sample",
                         [*_F32, "model.encoder=conv", "model.inference=encoder+langevin",
                          f"model.posterior_chain.n_steps={k}"]) for k in (0, 5, 20)},
}


def train_all(out: Path, args: argparse.Namespace) -> None:
    """Train (or resume) every variant to ``--steps``, all processes at once."""
    procs = []
    for name in args.variants:
        run = run_dir(out, name, args.seed)
        if (run / "checkpoints" / f"step_{args.steps:08d}").is_dir():
            continue
        if (run / "checkpoints").is_dir():
            cmd = ["resume", str(run), "--max-steps", str(args.steps), "--no-progress"]
        else:
            run.parent.mkdir(parents=True, exist_ok=True)
            cmd = checkpointed_train(args.preset, run, seed=args.seed, steps=args.steps,
                                     threads=args.threads,
                                     checkpoint_every=args.checkpoint_every,
                                     sample_every=args.steps,
                                     overrides=VARIANTS[name][1] + args.overrides)
        log = open(run.with_suffix(".log"), "a")  # noqa: SIM115 (closed below)
        print("start", name, " ".join(cmd), flush=True)
        procs.append((name, subprocess.Popen([sys.executable, "-m", "lebm.cli", *cmd],
                                             stdout=log, stderr=subprocess.STDOUT), log))
    for name, p, log in procs:
        code = p.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"{name}: lebm exited with {code}; see its .log")


def time_to(curve: list[dict], mse: float, fd: float) -> dict | None:
    """The first scored checkpoint at or below both bars (``None``: never reached)."""
    for p in sorted(curve, key=lambda p: p["step"]):
        if p["mse"] <= mse and p["fd_mnist"] <= fd:
            return p
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="mnist")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS)[:4], choices=list(VARIANTS),
                    help="default: naive, fast, persistent, fast+persistent (the encoder-kK "
                         "variants on request: every variant is one process)")
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--targets", type=int, nargs="+", default=[2000, 10_000])
    ap.add_argument("--checkpoint-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="config override for every variant")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/time_to_quality"))
    args = ap.parse_args()
    if "naive" not in args.variants:
        raise SystemExit("the naive variant is the reference: keep it in --variants")
    if any(t % args.checkpoint_every or t > args.steps for t in args.targets):
        raise SystemExit("each target must be a checkpoint step (a multiple of "
                         "--checkpoint-every) within --steps")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    path = out / "time_to_quality.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    curves: dict[str, list[dict]] = record.get("curves", {})

    t0 = time.perf_counter()
    train_all(out, args)

    import torch

    torch.set_num_threads(2 * args.threads)

    for name in args.variants:
        key = f"{name}-s{args.seed}"
        run = run_dir(out, name, args.seed)
        pts = clock(run)
        done = {p["step"] for p in curves.get(key, [])}
        for step in range(args.checkpoint_every, args.steps + 1, args.checkpoint_every):
            if step in done:
                continue
            curves.setdefault(key, []).append(
                {"step": step, "seconds": seconds_at(pts, step),
                 **mnist_quality(run, step, args.n_test, args.n_samples)})
            print(key, curves[key][-1], flush=True)
            write(out, args, curves, t0)
    write(out, args, curves, t0)
    print((out / "time_to_quality.md").read_text())


def write(out: Path, args: argparse.Namespace, curves: dict[str, list[dict]], t0: float
          ) -> None:
    import torch

    seed = args.seed
    naive = {p["step"]: p for p in curves.get(f"naive-s{seed}", [])}
    headline = {}
    for n in args.targets:
        bar = naive.get(n)
        if bar is None:
            continue
        for name in args.variants:
            hit = time_to(curves.get(f"{name}-s{seed}", []), bar["mse"], bar["fd_mnist"])
            headline[f"{name}@{n}"] = None if hit is None else {
                "step": hit["step"], "seconds": hit["seconds"],
                "ratio": bar["seconds"] / hit["seconds"]}
    result = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "preset": args.preset, "variants": {v: VARIANTS[v] for v in args.variants},
              "seed": seed, "threads": args.threads, "curves": curves, "headline": headline,
              "script_seconds": time.perf_counter() - t0,
              "machine": machine(torch.device("cpu"))}
    (out / "time_to_quality.json").write_text(json.dumps(result, indent=1))
    rows = ["| target (naive at N steps) | variant | reached at step | seconds | speed-up |",
            "|---|---|---|---|---|"]
    for key, h in headline.items():
        name, n = key.rsplit("@", 1)
        rows.append(f"| {n} | {name} | " + ("not reached | – | – |" if h is None else
                                             f"{h['step']} | {h['seconds']:.0f} | "
                                             f"{h['ratio']:.2f}× |"))
    cpu = result["machine"]["cpu"]
    rows += ["", f"All variants trained side by side, {args.threads} thread(s) each, on {cpu}; "
             f"test MSE on {args.n_test} digits and FD-MNIST from {args.n_samples} samples at "
             f"every checkpoint; seed {seed}. Command: `{result['command']}`"]
    (out / "time_to_quality.md").write_text("\n".join(rows) + "\n")
    plot_quality_vs_minutes(
        {name: [(p["seconds"] / 60, p["mse"], p["fd_mnist"])
                for p in sorted(curves.get(f"{name}-s{seed}", []), key=lambda p: p["step"])]
         for name in args.variants}, out / "time_to_quality.png")


if __name__ == "__main__":
    main()
