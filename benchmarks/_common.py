"""Shared pieces of the benchmark scripts: timing, machine description, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

# The two settings every side-by-side comparison uses (compare_naive, quality_fastpath).
FLOAT32 = ["chain_dtype=float32", "channels_last=false", "update_dtype=float32"]
FAST = ["chain_dtype=bfloat16", "channels_last=true", "update_dtype=bfloat16"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], Any], iters: int, warmup: int,
               device: torch.device) -> list[float]:
    """Wall seconds of ``iters`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def emit(result: dict[str, Any]) -> None:
    """Print the result as the last line: one JSON object."""
    print(json.dumps(result), flush=True)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of the matmuls and convolutions ``fn`` runs (PyTorch's flop registry).

    A plain dispatch mode rather than ``FlopCounterMode``, whose module hooks do not
    support ``torch.autograd.grad`` (used by every Langevin step).
    """
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    total = 0

    class Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            nonlocal total
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            rule = flop_registry.get(func._overloadpacket)
            if rule is not None:
                total += int(rule(*args, **kwargs, out_val=out))
            return out

    with Counter():
        fn()
    return total


def _run_only() -> tuple[str, ...]:
    """Train settings that do not change what a run learns: the step budget and those that
    ``lebm resume --set`` may change."""
    from lebm.config import RESUME_SETTINGS

    return ("max_steps", *RESUME_SETTINGS)


def resume_command(python: str, run: Path, steps: int, cmd: list[str]) -> list[str]:
    """``lebm resume`` of ``run`` to ``steps``, carrying over the ``--set`` items of the
    run's train command that ``resume`` may change (a new checkpoint cadence, thread
    count, ...), so that a command edited between restarts takes effect on the runs it
    continues."""
    from lebm.config import RESUME_SETTINGS

    out = [python, "-m", "lebm.cli", "resume", str(run), "--max-steps", str(steps),
           "--no-progress"]
    for flag, item in zip(cmd, cmd[1:]):
        name = item.partition("=")[0].strip().removeprefix("train.")
        if flag == "--set" and name in RESUME_SETTINGS and name != "progress":
            out += ["--set", item]
    return out


def _learned_config(cfg: dict) -> dict:
    from lebm.config import RunConfig

    # through RunConfig: keys added since the run was trained take their defaults
    out = json.loads(json.dumps(RunConfig.from_dict(cfg).to_dict()))
    out["train"] = {k: v for k, v in out["train"].items() if k not in _run_only()}
    out["model"].pop("data_shape", None)  # filled in from the data at train time
    if out["data"].get("name") in ("ptb", "text"):
        out["model"].pop("n_categories", None)  # likewise: the vocabulary's size
    return out


def config_of_command(cmd: list[str]) -> dict | None:
    """The resolved config a ``lebm train PRESET ...`` command would run (``to_dict``), or
    ``None`` for other commands."""
    from lebm.cli import build_parser, train_config

    if "train" not in cmd:
        return None
    return train_config(build_parser().parse_args(cmd[cmd.index("train"):])).to_dict()


def config_changes(run: Path, cmd: list[str]) -> list[str]:
    """The learned settings in which ``run``'s stored config differs from the one ``cmd``
    builds now, as ``"section.key: stored -> wanted"`` lines (empty when they agree, when
    ``run`` has no config yet, or for a command that is not ``lebm train``). Run-only
    settings such as the step budget and thread count do not count."""
    want = config_of_command(cmd)
    if want is None or not (run / "config.json").is_file():
        return []
    have = _learned_config(json.loads((run / "config.json").read_text())["config"])
    want = _learned_config(want)
    changes = []
    for section in sorted(set(have) | set(want)):
        a, b = have.get(section, {}), want.get(section, {})
        if not (isinstance(a, dict) and isinstance(b, dict)):
            if a != b:
                changes.append(f"{section}: {a!r} -> {b!r}")
            continue
        changes += [f"{section}.{key}: {a.get(key)!r} -> {b.get(key)!r}"
                    for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)]
    return changes


def same_config(run: Path, cmd: list[str]) -> bool:
    """Whether ``run`` was trained with the config ``cmd`` asks for (run-only settings such
    as the step budget and thread count aside)."""
    return not config_changes(run, cmd)


def set_aside(run: Path) -> Path:
    """Rename ``run`` (and its ``.log``) to the first free ``<name>.stale-N``, so that a run
    trained afresh never deletes one that took hours; returns the new folder."""
    n = 1
    while (aside := run.with_name(f"{run.name}.stale-{n}")).exists():
        n += 1
    run.rename(aside)
    log = run.parent / f"{run.name}.log"
    if log.is_file():
        log.rename(run.parent / f"{aside.name}.log")
    return aside


def train_runs(jobs: list[tuple[Path, list[str], int]], parallel: int) -> dict[str, dict]:
    """Run ``lebm train`` commands ``parallel`` at a time; ``{run name: {seconds, steps}}``.

    ``jobs`` holds ``(run folder, command, steps)``. A run whose ``wall_seconds.json`` records
    the same number of steps is reused; an unfinished run with a checkpoint is continued with
    ``lebm resume`` (its wall time then covers this process only, marked ``resumed``), so an
    interrupted script picks up where it stopped. A run whose stored config differs from
    the one its command builds now (a preset changed since) is moved aside to
    ``<run>.stale-N`` (the differing settings printed) and trained again from scratch.
    Each run's output goes to ``<run>.log`` next to it; a failed run stops the script.
    """
    import subprocess

    walls: dict[str, dict] = {}
    todo = []
    for run, cmd, steps in jobs:
        wall_file = run / "wall_seconds.json"
        if changes := config_changes(run, cmd):
            aside = set_aside(run)
            print(f"{run.name}: its config differs from the command's ({'; '.join(changes)}); "
                  f"moved to {aside.name}, training afresh", flush=True)
            todo.append((run, cmd, steps))
        elif wall_file.is_file() and json.loads(wall_file.read_text()).get("steps") == steps:
            walls[run.name] = json.loads(wall_file.read_text())
        elif (run / "checkpoints" / "latest").is_file() and (run / "config.json").is_file():
            todo.append((run, resume_command(cmd[0], run, steps, cmd), steps))
        else:
            todo.append((run, cmd, steps))
    running: list[tuple[Path, subprocess.Popen, float, int, Any, list[str]]] = []
    while todo or running:
        while todo and len(running) < parallel:
            run, cmd, steps = todo.pop(0)
            run.parent.mkdir(parents=True, exist_ok=True)
            log = open(run.parent / f"{run.name}.log", "a")
            print("start", " ".join(cmd), flush=True)
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            running.append((run, proc, time.perf_counter(), steps, log, cmd))
        time.sleep(2)
        for item in list(running):
            run, proc, t0, steps, log, cmd = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            if proc.returncode != 0:
                raise SystemExit(f"{run.name} failed; see {run.parent / (run.name + '.log')}")
            wall = {"seconds": time.perf_counter() - t0, "steps": steps,
                    "resumed": "resume" in cmd}
            (run / "wall_seconds.json").write_text(json.dumps(wall))
            walls[run.name] = wall
            print("done", run.name, f"{wall['seconds']:.0f} s", flush=True)
    return walls


def run_dir(out: Path, name: str, seed: int) -> Path:
    """The run folder of ``name`` (a preset or variant) with ``seed`` under ``out/runs``."""
    return out / "runs" / f"{name}-s{seed}"


def checkpointed_train(preset: str, run: Path, *, seed: int, steps: int, threads: int,
                       checkpoint_every: int, sample_every: int,
                       overrides: tuple[str, ...] | list[str] = ()) -> list[str]:
    """``lebm train`` arguments (after ``lebm``) that keep every checkpoint (for curves of
    quality against steps), then the ``--set`` ``overrides``."""
    cmd = ["train", preset, "--run-dir", str(run), "--seed", str(seed), "--no-progress",
           "--max-steps", str(steps), "--set", f"train.threads={threads}",
           "--set", f"train.checkpoint_every={checkpoint_every}",
           "--set", "train.keep_checkpoints=100000",
           "--set", f"train.sample_every={sample_every}"]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def clock(run: Path) -> list[tuple[int, float]]:
    """``[(step, training seconds up to it)]`` from a run's ``metrics.jsonl``: the sum of its
    logged ``sec_per_step`` (the trainer's own measure, sampling and checkpoints included)."""
    points, total, last = [(0, 0.0)], 0.0, 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if "sec_per_step" not in row or "step" not in row:
            continue
        total += row["sec_per_step"] * (row["step"] - last)
        last = row["step"]
        points.append((last, total))
    return points


def seconds_at(points: list[tuple[int, float]], step: int) -> float:
    """Training seconds at ``step``, interpolated between logged steps (past the last log:
    at its rate)."""
    for (s0, t0), (s1, t1) in zip(points, points[1:]):
        if s0 <= step <= s1:
            return t0 + (t1 - t0) * (step - s0) / max(s1 - s0, 1)
    (s0, t0), (s1, t1) = points[-2:] if len(points) > 1 else ((0, 0.0), points[-1])
    return t1 + (step - s1) * (t1 - t0) / max(s1 - s0, 1)


def mnist_quality(run: Path, step: int, n_test: int | None, n_samples: int) -> dict[str, float]:
    """``{"mse", "mse_se", "fd_mnist"}`` of a run's checkpoint at ``step``: the model's
    inference on ``n_test`` images of the run's test split (``None``: all) and FD-MNIST of
    ``n_samples`` prior samples against that split."""
    from lebm.evaluate import EvalSettings, evaluate

    m = evaluate(run, ["mse", "fd_mnist"], EvalSettings(
        n_samples=n_samples, n_test=n_test, progress=False),
        checkpoint=f"step_{step:08d}")["metrics"]
    return {"mse": m["mse"]["mse"], "mse_se": m["mse"]["se"], "fd_mnist": m["fd_mnist"]["value"]}


def plot_lines(series: dict[str, list[tuple[float, ...]]], xlabel: str, ylabels: list[str],
               path: Path) -> None:
    """One panel per ``ylabels`` entry, one line per name: ``series[name]`` holds points
    ``(x, y_1, ..., y_k)`` in order, ``y_i`` drawn in panel ``i``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(ylabels), figsize=(5 * len(ylabels), 3.6), squeeze=False)
    for name, pts in series.items():
        if pts:
            xs, *ys = zip(*pts)
            for ax, y in zip(axes[0], ys):
                ax.plot(xs, y, "o-", ms=3, label=name)
    for ax, ylabel in zip(axes[0], ylabels):
        ax.set(xlabel=xlabel, ylabel=ylabel)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_quality_vs_minutes(series: dict[str, list[tuple[float, float, float]]],
                            path: Path) -> None:
    """Test MSE and FD-MNIST against training minutes, one line per name; ``series[name]``
    holds ``(minutes, mse, fd_mnist)`` points in order."""
    plot_lines(series, "training minutes",
               ["test MSE / pixel [-1, 1]", "FD-MNIST (lower is better)"], path)
