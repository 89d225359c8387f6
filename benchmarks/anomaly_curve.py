"""MNIST anomaly AUPRC against training length, for one held-out digit.

    python benchmarks/anomaly_curve.py --base mnist --digit 4 --steps 1000 2000 3000 4000 \\
        --from benchmarks/results/anomaly_mnist/runs

Trains the anomaly table's models (``--models``, default LEBM, VAE and ABP of the ``--base``
preset family, ``data.exclude_classes=DIGIT``) step by step to each count in ``--steps``,
and after each scores the whole MNIST test set at exactly that checkpoint (``lebm eval
--metrics auprc --checkpoint step_N``: ``−log p̃(x, z)`` at the model's own posterior ``z``,
held-out digit positive), so one can see whether a gap to the paper is a matter of budget.
``--protocol zenati`` trains and scores under the papers' split (REFERENCE; the run's test
split is the published one, leak included).

``--from DIR`` starts each model from ``DIR/<model>-d<digit>-s<seed>`` (e.g. the anomaly
table's runs) instead of from scratch: the folder is copied, never changed. A step that
the copy no longer holds as a checkpoint is scored in the source folder when it is there.
Rerunning continues where the script stopped: scored steps are kept in ``OUT/curve.json``,
runs are resumed with ``lebm resume``. Writes ``OUT/curve.json``, ``OUT/curve.md`` and
``OUT/curve.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, train_runs  # noqa: E402
from anomaly_mnist import (  # noqa: E402
    DEFAULT_MODELS,
    FAMILIES,
    MODEL_NAMES,
    PAPER,
    PRESETS,
    PROTOCOLS,
    preset_of,
    train_command,
)


def _latest_step(run: Path) -> int:
    """The step of ``run``'s latest checkpoint; ``-1`` before the first."""
    from lebm.train.checkpoint import latest_checkpoint, step_of

    if not (run / "checkpoints").is_dir():
        return -1
    step = step_of(latest_checkpoint(run).name)
    assert step is not None
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digit", type=int, default=4)
    ap.add_argument("--base", default="anomaly-mnist", choices=list(FAMILIES),
                    help="the preset family (anomaly_mnist.py --base)")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(PRESETS))
    ap.add_argument("--steps", type=int, nargs="+", default=[1000, 2000, 3000, 4000])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all)")
    ap.add_argument("--from", dest="source", type=Path,
                    help="folder of runs named <model>-d<digit>-s<seed> to start from")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--protocol", default="none", choices=PROTOCOLS,
                    help="zenati: train and score on the papers' split (the published, "
                         "leaking test set: the run's own test split); none: the whole 10k "
                         "test split (the committed curve)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/anomaly_curve"))
    args = ap.parse_args()
    if not 0 <= args.digit <= 9:
        raise SystemExit(f"--digit must be 0..9, got {args.digit}")
    if sorted(args.steps) != args.steps or args.steps[0] < 1:
        raise SystemExit("--steps must be positive and increasing")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    record_path = out / "curve.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    points: dict[str, dict[str, dict]] = record.get("points", {})
    train_seconds: dict[str, float] = record.get("train_seconds", {})
    if args.threads:
        torch.set_num_threads(args.threads)

    from lebm.evaluate import EvalSettings, evaluate
    from lebm.train.checkpoint import step_dir

    t_start = time.perf_counter()
    for model in args.models:
        name = f"{model}-d{args.digit}-s{args.seed}"
        run = out / "runs" / name
        source = args.source / name if args.source else None
        if source is not None and not run.exists():
            if not (source / "checkpoints").is_dir():
                raise SystemExit(f"--from: {source} is not a run folder")
            shutil.copytree(source, run)
        run.parent.mkdir(parents=True, exist_ok=True)
        per = points.setdefault(model, {})
        for step in args.steps:
            if str(step) in per:
                continue
            if _latest_step(run) < step:  # trains, or resumes a run that has a checkpoint
                cmd = train_command(model, run, args.digit, args.seed, step, args.threads,
                                    args.overrides, args.protocol, args.base)
                wall = train_runs([(run, cmd, step)], 1)[run.name]
                train_seconds[model] = train_seconds.get(model, 0.0) + wall["seconds"]
            where = run
            if not step_dir(run, step).is_dir() and source is not None \
                    and step_dir(source, step).is_dir():
                where = source
            if not step_dir(where, step).is_dir():
                print(f"{name}: checkpoint of step {step} is gone; not scored", flush=True)
                continue
            t0 = time.perf_counter()
            # a copy's eval.json is ours to overwrite; a source folder's is not
            target = where if where == run else _scratch_copy(where, step, out)
            rec = evaluate(target, ["auprc"], EvalSettings(progress=False),
                           checkpoint=f"step_{step:08d}")["metrics"]["auprc"]
            per[str(step)] = {"auprc": rec["auprc"], "auroc": rec["auroc"],
                              "average_precision": rec.get("average_precision"),
                              "epochs": step / _steps_per_epoch(run),
                              "score_seconds": time.perf_counter() - t0,
                              "scored_in": str(where)}
            print(name, step, round(rec["auprc"], 4), flush=True)
            _write(out, args, points, train_seconds, t_start, record)
    _write(out, args, points, train_seconds, t_start, record)
    print((out / "curve.md").read_text())


def _scratch_copy(source: Path, step: int, out: Path) -> Path:
    """The config and one checkpoint of ``source`` in a scratch folder under ``out``."""
    from lebm.train.checkpoint import step_dir

    dst = out / "scratch" / source.name
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "checkpoints").mkdir(parents=True)
    shutil.copy2(source / "config.json", dst / "config.json")
    shutil.copytree(step_dir(source, step), step_dir(dst, step))
    return dst


def _steps_per_epoch(run: Path) -> float:
    return float(json.loads((run / "config.json").read_text()).get("steps_per_epoch", 540))


def _write(out: Path, args, points, train_seconds, t_start, previous) -> None:
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "digit": args.digit, "seed": args.seed, "steps": args.steps,
        "base": args.base, "presets": {m: preset_of(m, args.base) for m in args.models},
        "overrides": args.overrides,
        "source": str(args.source) if args.source else None,
        "points": points, "train_seconds": train_seconds,
        "wall_seconds_this_call": time.perf_counter() - t_start,
        "wall_seconds_earlier_calls": previous.get("wall_seconds_earlier_calls", 0.0)
        + previous.get("wall_seconds_this_call", 0.0),
        "paper": {k: v[args.digit] for k, v in PAPER.items()},
        "hardware": {**machine(torch.device("cpu")), "threads_per_run": args.threads or "all"},
        "protocol": args.protocol,
        "recipe": {"score": "−log p̃(x, z) at the model's posterior z",
                   "test_set": ("the papers' split (data.holdout_protocol=zenati, the "
                                "published test set)" if args.protocol == "zenati"
                                else "the whole MNIST test split"),
                   "metric": "auprc: trapezoid AUPRC (lebm.metrics.auprc); average_precision "
                             "beside it; held-out digit positive"},
    }
    (out / "curve.json").write_text(json.dumps(result, indent=2))
    (out / "curve.md").write_text(markdown(result))
    plot(result, out / "curve.png")


def markdown(result: dict) -> str:
    steps = sorted({int(s) for per in result["points"].values() for s in per})
    lines = ["| model | " + " | ".join(f"{s} steps" for s in steps) + " |",
             "|---|" + "---|" * len(steps)]
    for model, per in result["points"].items():
        lines.append(f"| {MODEL_NAMES[model]} | " + " | ".join(
            f"{per[str(s)]['auprc']:.3f}" if str(s) in per else "–" for s in steps) + " |")
    for name, v in result["paper"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for _ in steps) + " |")
    hw = result["hardware"]
    lines += ["", f"AUPRC for held-out digit {result['digit']} (positive class), seed "
              f"{result['seed']}, each model scored at each checkpoint; {hw['cpu']}, torch "
              f"{hw['torch']}.", f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for model, per in result["points"].items():
        s = sorted(per, key=int)
        ax.plot([per[k]["epochs"] for k in s], [per[k]["auprc"] for k in s], "o-",
                label=MODEL_NAMES[model])
    for (name, v), ls in zip(result["paper"].items(), ("--", ":"), strict=False):
        ax.axhline(v, color="gray", ls=ls, label=name)
    ax.set_xlabel("epochs")
    ax.set_ylabel("AUPRC")
    ax.set_title(f"MNIST, digit {result['digit']} held out")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
