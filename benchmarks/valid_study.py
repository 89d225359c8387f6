"""Choose a preset's setting on validation data: train each candidate on the training images
without the validation split, score every checkpoint on the validation split, apply a rule
fixed before the run.

    python benchmarks/valid_study.py --preset mnist --steps 10000 --every 1000 \\
        --candidate current --candidate lr_e=2e-5 method.lr_e=2e-5 \\
        --out benchmarks/results/mnist_valid_lr

Each ``--candidate NAME [KEY=VALUE ...]`` is the preset with those overrides; every
candidate trains with ``data.train_split=<--train-split>`` (MNIST: ``train50k``, the first
50,000 training images) and ``data.test_split=<--valid-split>`` (``valid``: the last 10,000),
so nothing here sees the test split. Runs go ``--jobs`` at a time, ``--threads`` each, and
resume where they stopped. Every ``--every`` steps each checkpoint is scored: validation
MSE (the model's inference on ``--n-valid`` images) and FD-MNIST of ``--n-samples`` prior
samples against the validation images; the training log's posterior latent norm and energy
are recorded beside them (drift shows there first).

**The rule** (stated before any number): at the last step, the candidates whose validation
MSE is within ``--mse-slack`` (10 %) of the lowest are eligible; of those, the lowest
validation FD-MNIST wins. The last step is what counts because a preset runs to its end.

``--branch-from RUN/checkpoints/step_NNNNNNNN`` starts every candidate from that checkpoint
of an earlier run on the same splits (``lebm train --from``: weights, optimiser moments and
random streams shared, each candidate's settings from the branch step on): a paired
comparison from one state, at the cost of the remaining steps only. Scoring starts at the
branch step. A candidate without overrides is the parent's own continuation (a branch with
an unchanged config continues it exactly), so when the parent run already has every
checkpoint to score, its run folder is scored instead of training it again.
Writes ``OUT/valid_study.json``, ``.md``, ``.png`` (both metrics and the posterior norm
against steps) and ``_prior.png`` (the learned prior's radial profile).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    checkpointed_train,
    machine,
    mnist_quality,
    plot_lines,
    run_dir,
    train_runs,
)


def parse_candidates(raw: list[list[str]]) -> dict[str, list[str]]:
    """``--candidate NAME [KEY=VALUE ...]`` lists -> ``{name: overrides}`` (names unique,
    non-empty and without ``/``: each is a run folder's name; every override ``KEY=VALUE``)."""
    out: dict[str, list[str]] = {}
    for name, *overrides in raw:
        if name in out:
            raise SystemExit(f"candidate {name!r} given twice")
        if "/" in name or not name.strip():
            raise SystemExit(f"candidate name {name!r}: a non-empty name without '/'")
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise SystemExit(f"candidate {name}: overrides are KEY=VALUE, got {bad}")
        out[name] = overrides
    if len(out) < 2:
        raise SystemExit("a study needs at least two --candidate")
    return out


def choose(final: dict[str, dict], slack: float) -> str:
    """The rule: among candidates with final validation MSE within ``slack`` of the lowest,
    the lowest final FD-MNIST."""
    best_mse = min(p["mse"] for p in final.values())
    eligible = {k: p for k, p in final.items() if p["mse"] <= best_mse * (1 + slack)}
    return min(eligible, key=lambda k: eligible[k]["fd_mnist"])


def training_log_at(rows: list[dict], step: int, keys: tuple[str, ...]) -> dict[str, float]:
    """Mean of ``keys`` over the training log ``rows`` (a run's ``metrics.jsonl``) in the 100
    steps up to ``step``, each under ``train_<key>`` (the log's ``mse`` is the training
    batches', never to be mistaken for the validation MSE beside it)."""
    near = [r for r in rows if step - 100 < r.get("step", -1) <= step]
    return {f"train_{k}": sum(r[k] for r in near) / len(near) for k in keys
            if near and all(k in r for r in near)}


def training_jobs(out: Path, args: argparse.Namespace, cands: dict[str, list[str]]
                  ) -> list[tuple[Path, list[str], int]]:
    """``(run folder, lebm train command, steps)`` per candidate: the preset on the training
    split without the validation images, scored on the validation split, then the
    candidate's own overrides (branched from ``args.branch_from`` when given)."""
    split = [f"data.train_split={args.train_split}", f"data.test_split={args.valid_split}"]
    jobs = []
    for name, overrides in cands.items():
        run = run_dir(out, name, args.seed)
        cmd = checkpointed_train(args.preset, run, seed=args.seed, steps=args.steps,
                                 threads=args.threads, checkpoint_every=args.every,
                                 sample_every=args.steps, overrides=[*split, *overrides])
        if args.branch_from is not None:
            cmd += ["--from", str(args.branch_from)]
        jobs.append((run, [sys.executable, "-m", "lebm.cli", *cmd], args.steps))
    return jobs


def branch_point(args: argparse.Namespace) -> tuple[int, Path | None]:
    """The step scoring starts from and the parent run folder (``0, None`` without
    ``--branch-from``); refuses a checkpoint that is not one, or a parent trained on other
    splits (the study's validation images must be unseen)."""
    from lebm.train.checkpoint import step_of

    if args.branch_from is None:
        return 0, None
    ckpt = Path(args.branch_from)
    step = step_of(ckpt.name)
    if step is None or not ckpt.is_dir():
        raise SystemExit(f"--branch-from {ckpt}: a checkpoint folder "
                         "(RUN/checkpoints/step_NNNNNNNN)")
    parent = ckpt.parent.parent
    data = json.loads((parent / "config.json").read_text())["config"]["data"]
    if (data.get("train_split"), data.get("test_split")) != (args.train_split,
                                                            args.valid_split):
        raise SystemExit(f"--branch-from {ckpt}: its run trained on {data.get('train_split')}"
                         f" / {data.get('test_split')}, not {args.train_split} / "
                         f"{args.valid_split}")
    if step >= args.steps or (args.steps - step) % args.every:
        raise SystemExit(f"--branch-from step {step}: --steps ({args.steps}) must lie a "
                         f"positive multiple of --every ({args.every}) past it")
    return step, parent


def scored_run(out: Path, args: argparse.Namespace, name: str, overrides: list[str],
               start: int, parent: Path | None) -> Path:
    """The run folder whose checkpoints score candidate ``name``: the parent run itself for
    a branch (from step ``start``) without overrides when it holds every checkpoint to
    score, else its own."""
    if parent is not None and not overrides and all(
            (parent / "checkpoints" / f"step_{s:08d}").is_dir()
            for s in range(args.steps, start, -args.every)):
        return parent
    return run_dir(out, name, args.seed)


RADII = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0)


def radial_profile(model: object, n_dirs: int = 200, seed: int = 0) -> list[float]:
    """The learned prior's unnormalised log-density along rays, ``log p̃(r u) − log p̃(0)``
    averaged over ``n_dirs`` random unit directions ``u``, at each radius of ``RADII``.
    ``N(0, I)`` gives ``−r²/2``; a profile that rises with ``r`` puts the prior's mass on a
    shell away from the origin (the drift this study looks for)."""
    import torch

    prior = model.prior  # type: ignore[attr-defined]
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(n_dirs, prior.latent.dim, generator=g)
    u = u / u.norm(dim=1, keepdim=True)
    with torch.no_grad():
        origin = prior.log_density(torch.zeros(1, prior.latent.dim))
        return [(prior.log_density(r * u) - origin).mean().item() for r in RADII]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="mnist")
    ap.add_argument("--candidate", nargs="+", action="append", required=True,
                    metavar="NAME [KEY=VALUE]")
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--train-split", default="train50k")
    ap.add_argument("--valid-split", default="valid")
    ap.add_argument("--n-valid", type=int, default=2000)
    ap.add_argument("--n-samples", type=int, default=5000)
    ap.add_argument("--mse-slack", type=float, default=0.10)
    ap.add_argument("--branch-from", type=Path, metavar="RUN/checkpoints/step_NNNNNNNN")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.steps % args.every:
        raise SystemExit("--steps must be a multiple of --every")
    cands = parse_candidates(args.candidate)
    start, parent = branch_point(args)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs = {name: scored_run(out, args, name, o, start, parent) for name, o in cands.items()}
    path = out / "valid_study.json"
    record = json.loads(path.read_text()) if path.is_file() else {}
    curves: dict[str, list[dict]] = record.get("curves", {})
    if record and record.get("candidates") != cands:
        raise SystemExit(f"{path} holds a study of other candidates; use another --out")
    t0 = time.perf_counter()

    train_runs([job for job in training_jobs(out, args, cands) if job[0] in runs.values()],
               args.jobs)

    import torch

    torch.set_num_threads(max(1, args.jobs * args.threads))

    import lebm
    from lebm.viz import read_metrics

    for name in cands:
        run = runs[name]
        log = read_metrics(run / "metrics.jsonl")
        done = {p["step"] for p in curves.get(name, [])}
        for step in range(start + args.every, args.steps + 1, args.every):
            if step in done:
                continue
            curves.setdefault(name, []).append(
                {"step": step, **mnist_quality(run, step, args.n_valid, args.n_samples),
                 **training_log_at(log, step, ("z_post_norm", "f_pos", "mse"))})
            print(name, curves[name][-1], flush=True)
            write(out, args, cands, curves, t0)
        for p in curves.get(name, []):
            if "prior_profile" not in p:  # cheap; added to points scored without it
                ckpt = run / "checkpoints" / f"step_{p['step']:08d}"
                p["prior_profile"] = radial_profile(lebm.load(ckpt))
    write(out, args, cands, curves, t0)
    print((out / "valid_study.md").read_text())


def write(out: Path, args: argparse.Namespace, cands: dict[str, list[str]],
          curves: dict[str, list[dict]], t0: float) -> None:
    import torch

    final = {}
    for name in cands:
        last = [p for p in curves.get(name, []) if p["step"] == args.steps]
        if last:
            final[name] = last[0]
    chosen = choose(final, args.mse_slack) if len(final) == len(cands) else None
    result = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "preset": args.preset, "candidates": cands, "seed": args.seed,
              "train_split": args.train_split, "valid_split": args.valid_split,
              "prior_profile_radii": list(RADII),
              "branch_from": None if args.branch_from is None else str(args.branch_from),
              "rule": f"final-step valid MSE within {args.mse_slack:.0%} of the lowest, then "
                      "the lowest valid FD-MNIST",
              "chosen": chosen, "curves": curves, "script_seconds": time.perf_counter() - t0,
              "machine": machine(torch.device("cpu"))}
    (out / "valid_study.json").write_text(json.dumps(result, indent=1))
    rows = ["| candidate | overrides | step | valid MSE | valid FD-MNIST | posterior ‖z‖ "
            "(training log) |", "|---|---|---|---|---|---|"]
    for name, overrides in cands.items():
        for p in sorted(curves.get(name, []), key=lambda p: p["step"]):
            rows.append(f"| {name} | {' '.join(overrides) or '(preset)'} | {p['step']} | "
                        f"{p['mse']:.4f} | {p['fd_mnist']:.0f} | "
                        f"{p.get('train_z_post_norm', float('nan')):.1f} |")
    rows += ["", f"Rule: {result['rule']}. Chosen: **{chosen or 'not yet (runs unfinished)'}**.",
             "", f"Preset `{args.preset}`, trained on `{args.train_split}`, scored on "
             f"`{args.valid_split}` ({args.n_valid} images for MSE, {args.n_samples} samples "
             f"for FD-MNIST); seed {args.seed}; {result['machine']['cpu']}. "
             + (f"Every candidate branched from `{args.branch_from}`. "
                if args.branch_from is not None else "") +
             f"Command: `{result['command']}`"]
    (out / "valid_study.md").write_text("\n".join(rows) + "\n")
    plot(curves, out / "valid_study.png")


def plot(curves: dict[str, list[dict]], path: Path) -> None:
    plot_lines({name: [(p["step"], p["mse"], p["fd_mnist"],
                        p.get("train_z_post_norm", float("nan")))
                       for p in sorted(pts, key=lambda p: p["step"])]
                for name, pts in curves.items()}, "training step",
               ["valid MSE / pixel [-1, 1]", "valid FD-MNIST (lower is better)",
                "posterior ‖z‖ (training log)"], path)
    profiles: dict[str, list[tuple[float, ...]]] = {"N(0, I): −r²/2": [
        (r, -r * r / 2) for r in RADII]}
    for name, pts in curves.items():  # the first and last scored steps and every 5,000th
        steps = {p["step"] for p in pts}
        shown = {min(steps, default=0), max(steps, default=0)} | {s for s in steps
                                                                   if s % 5000 == 0}
        for p in sorted(pts, key=lambda p: p["step"]):
            if "prior_profile" in p and p["step"] in shown:
                profiles[f"{name} @ {p['step']}"] = list(zip(RADII, p["prior_profile"]))
    if len(profiles) > 1:
        plot_lines(profiles, "radius r of z = r u",
                   ["learned prior: mean log p̃(r u) − log p̃(0)"],
                   path.with_name(path.stem + "_prior.png"))


if __name__ == "__main__":
    main()
