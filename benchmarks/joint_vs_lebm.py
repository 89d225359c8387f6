"""The joint multi-layer EBM prior against single-layer LEBM at equal wall-clock time (MNIST).

    python benchmarks/joint_vs_lebm.py --minutes 40 --budgets 10 20 30 40 --threads 1

(Any two presets with ``--compare``: ``--compare lebm=mnist nce=nce-mnist --out
benchmarks/results/nce_vs_lebm`` is the multi-stage NCE prior against LEBM.)

Trains the presets ``mnist`` (LEBM: z 16, one energy) and ``joint-mnist`` (z1 16 under
z2 8, an energy per layer, the same conv generator) **side by side**, one process each
with ``--threads`` torch threads, so both see the same machine load, for ``--minutes`` of
wall-clock each (then SIGTERM: the trainer stops after the current step with a checkpoint).
Checkpoints every ``--checkpoint-every`` steps are all kept.

A run's training clock is the sum of its logged ``sec_per_step`` (the trainer's own
measure, sampling and checkpoints included). For each budget ``B`` in ``--budgets``
(minutes) each model is scored at its last checkpoint reached within ``B`` minutes of its
own clock: test MSE (posterior chain of the model's inference on the 10,000 MNIST test
digits, ``--n-test`` to use fewer) and FD-MNIST (``--n-samples`` prior samples against the
test digits, features of the library's MNIST classifier). Nothing is tuned here: both
presets as they are, seed ``--seed``.

Rerunning reuses finished training (``OUT/runs/*/done.json``) and scored points; a larger
``--minutes`` extends both runs (``lebm resume``, side by side) instead of starting again. Writes
``OUT/joint_vs_lebm.json``, ``.md`` and ``.png`` (both metrics against minutes).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    clock,
    machine,
    mnist_quality,
    plot_quality_vs_minutes,
    seconds_at,
)

PRESETS = {"lebm": "mnist", "joint": "joint-mnist"}
NAMES = {"lebm": "LEBM, one layer (`mnist`)", "joint": "joint EBM, two layers (`joint-mnist`)"}


def set_pair(pairs: list[str]) -> None:
    """``--compare NAME=PRESET ...``: the models to train side by side instead of the
    default pair (e.g. ``lebm=mnist nce=nce-mnist`` for the multi-stage NCE prior)."""
    if not pairs:
        return
    PRESETS.clear()
    NAMES.clear()
    for item in pairs:
        name, sep, preset = item.partition("=")
        if not sep or not name or not preset:
            raise SystemExit(f"--compare expects NAME=PRESET, got {item!r}")
        PRESETS[name] = preset
        NAMES[name] = f"{name} (`{preset}`)"


def train_side_by_side(out: Path, minutes: float, threads: int, seed: int, every: int,
                       overrides: list[str]) -> tuple[dict[str, dict], bool]:
    """Train both presets at once for ``minutes``; ``({model: done record}, fresh)``.

    A pair already trained side by side for the same fewer minutes (both records agree,
    both resumable) is extended with ``lebm resume`` for the difference (both models again
    side by side); any other unfinished state trains both from scratch. ``fresh`` says
    whether the pair was trained from scratch (then earlier scored points no longer apply).
    """
    procs: dict[str, tuple[subprocess.Popen, object]] = {}
    done: dict[str, dict] = {}
    todo: list[tuple[str, list[str], str]] = []
    recs = {}
    for model in PRESETS:
        marker = out / "runs" / model / "done.json"
        recs[model] = json.loads(marker.read_text()) if marker.is_file() else None
    earlier = {r.get("minutes", -1.0) if r else -1.0 for r in recs.values()}
    # extend only a pair trained side by side for the same shorter time, both resumable
    before = earlier.pop() if len(earlier) == 1 else -1.0
    extend = 0 < before < minutes and all(
        (out / "runs" / m / "checkpoints" / "latest").is_file() for m in PRESETS)
    extra = minutes - before if extend else minutes
    fresh = False
    for model, preset in PRESETS.items():
        run = out / "runs" / model
        rec = recs[model]
        if rec is not None and rec.get("minutes") == minutes:
            done[model] = rec
            continue
        run.parent.mkdir(parents=True, exist_ok=True)
        if extend:
            cmd = [sys.executable, "-m", "lebm.cli", "resume", str(run), "--no-progress",
                   "--max-steps", "1000000"]
            mode = "a"
        else:
            fresh = True
            cmd = [sys.executable, "-m", "lebm.cli", "train", preset, "--run-dir", str(run),
                   "--seed", str(seed), "--overwrite", "--no-progress", "--max-steps",
                   "1000000", "--set", f"train.threads={threads}", "--set",
                   f"train.checkpoint_every={every}", "--set", "train.keep_checkpoints=100000",
                   "--set", "train.sample_every=2000"]
            for o in overrides:
                cmd += ["--set", o]
            mode = "w"
        todo.append((model, cmd, mode))
    if todo and len(todo) != len(PRESETS):
        raise SystemExit("one run of the pair is complete and the other is not; remove "
                         f"{out / 'runs'} to train both again side by side")
    for model, cmd, mode in todo:
        log = open((out / "runs" / model).with_suffix(".log"), mode)  # noqa: SIM115
        print("start", " ".join(cmd[1:]), flush=True)
        procs[model] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log)
    if procs:
        deadline = time.monotonic() + 60 * (minutes if fresh else extra)
        while time.monotonic() < deadline and any(p.poll() is None for p, _ in procs.values()):
            time.sleep(5)
        for p, _ in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for model, (p, log) in procs.items():
            code = p.wait()
            log.close()  # type: ignore[attr-defined]
            run = out / "runs" / model
            if code not in (0, 128 + signal.SIGTERM):
                raise SystemExit(f"{model}: lebm train exited with {code}; see "
                                 f"{run.with_suffix('.log')}")
            rec = {"minutes": minutes, "exit_code": code, "threads": threads, "seed": seed}
            (run / "done.json").write_text(json.dumps(rec))
            done[model] = rec
    return done, fresh


def checkpoint_within(run: Path, budget_s: float) -> tuple[int, float] | None:
    """The last checkpoint reached within ``budget_s`` training seconds: ``(step, s)``."""
    from lebm.train.checkpoint import step_of

    points = clock(run)
    best = None
    for d in sorted((run / "checkpoints").iterdir()):
        step = step_of(d.name)
        if step is None:
            continue
        s = seconds_at(points, step)
        if s <= budget_s and (best is None or step > best[0]):
            best = (step, s)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=40.0, help="wall-clock of each run")
    ap.add_argument("--budgets", type=float, nargs="+", default=[10, 20, 30, 40],
                    help="training minutes at which both are scored")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint-every", type=int, default=250)
    ap.add_argument("--n-test", type=int, default=None)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for both runs")
    ap.add_argument("--compare", nargs="+", default=[], metavar="NAME=PRESET",
                    help="models to compare (default: lebm=mnist joint=joint-mnist)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/joint_vs_lebm"))
    args = ap.parse_args()
    set_pair(args.compare)
    if max(args.budgets) > args.minutes:
        raise SystemExit("--budgets must not exceed --minutes")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "joint_vs_lebm.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    scored: dict[str, dict] = record.get("points", {})

    t0 = time.perf_counter()
    _, fresh = train_side_by_side(out, args.minutes, args.threads, args.seed,
                                  args.checkpoint_every, args.overrides)
    if fresh:  # points scored on earlier runs of these folders no longer apply
        scored = {}
    import torch

    torch.set_num_threads(max(args.threads, 1) * 2)

    for budget in args.budgets:
        for model in PRESETS:
            key = f"{model}@{budget:g}"
            if key in scored:
                continue
            run = out / "runs" / model
            hit = checkpoint_within(run, 60 * budget)
            if hit is None:
                print(f"{key}: no checkpoint within {budget} min", flush=True)
                continue
            step, secs = hit
            t = time.perf_counter()
            scored[key] = {"model": model, "budget_min": budget, "step": step,
                           "train_seconds": secs,
                           **mnist_quality(run, step, args.n_test, args.n_samples),
                           "eval_seconds": time.perf_counter() - t}
            print(key, scored[key], flush=True)
            write(out, args, scored, t0)
    write(out, args, scored, t0)
    print((out / "joint_vs_lebm.md").read_text())


def write(out: Path, args: argparse.Namespace, scored: dict[str, dict], t0: float) -> None:
    import torch

    steps_done = {m: clock(out / "runs" / m)[-1] for m in PRESETS}
    result = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "minutes": args.minutes, "threads": args.threads, "seed": args.seed,
              "presets": PRESETS, "overrides": args.overrides,
              "trained": {m: {"steps": s, "seconds": t} for m, (s, t) in steps_done.items()},
              "points": scored, "script_seconds": time.perf_counter() - t0,
              "machine": machine(torch.device("cpu"))}
    (out / "joint_vs_lebm.json").write_text(json.dumps(result, indent=1))
    rows = ["| training minutes | model | step | test MSE / pixel [-1, 1] | FD-MNIST |",
            "|---|---|---|---|---|"]
    for p in sorted(scored.values(), key=lambda p: (p["budget_min"], p["model"])):
        rows.append(f"| {p['budget_min']:g} | {NAMES[p['model']]} | {p['step']} | "
                    f"{p['mse']:.4f} ± {p['mse_se']:.4f} | {p['fd_mnist']:.2f} |")
    cpu = result["machine"].get("cpu", "this CPU")
    trained = "; ".join(f"{m}: {s} steps in {t / 60:.1f} min" for m, (s, t) in
                        steps_done.items())
    rows += ["", f"Both trained side by side, {args.threads} thread(s) each, on {cpu} "
             f"({trained}); each scored at its last checkpoint within the budget of its own "
             f"clock; MSE on {'all' if args.n_test is None else args.n_test} test digits, "
             f"FD-MNIST from {args.n_samples} samples. Seed {args.seed}.",
             f"Command: `{result['command']}`"]
    (out / "joint_vs_lebm.md").write_text("\n".join(rows) + "\n")
    plot_quality_vs_minutes(
        {NAMES[m]: [(p["train_seconds"] / 60, p["mse"], p["fd_mnist"])
                    for p in sorted((p for p in scored.values() if p["model"] == m),
                                    key=lambda p: p["train_seconds"])] for m in PRESETS},
        out / "joint_vs_lebm.png")


if __name__ == "__main__":
    main()
