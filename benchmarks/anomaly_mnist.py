"""MNIST anomaly detection (LEBM paper, Table 4): LEBM, VAE and ABP side by side.

    python benchmarks/anomaly_mnist.py --protocol zenati          # the papers' protocol
    python benchmarks/anomaly_mnist.py --base mnist --protocol none   # whole 10k test split
    python benchmarks/anomaly_mnist.py --digits 1 --steps 300 --out /tmp/anomaly   # a quick look

For each held-out digit and seed, trains one generator three ways — LEBM, VAE and ABP, the
same generator and data for all three (``--models nce`` and, with ``--base mnist``, the joint
multi-layer models add rows) — and scores test images with ``−log p̃(x, z)`` at the model's
own posterior ``z`` (REFERENCE §1.5), the held-out digit positive. ``--base anomaly-mnist``
(the default; presets ``anomaly-mnist``, ``vae-``/``abp-``/``nce-anomaly-mnist``) follows
the nearest public latent-EBM MNIST anomaly code (DAMC: z 8, σ 1, posterior 30 steps, batch
128) on a CPU-sized generator; ``--base mnist`` is the library's ``mnist`` preset (z 16,
σ 0.3), whose generator the ``joint-*`` presets share.

``--protocol zenati`` (the default) is the split of every paper in this line
(``lebm.data.holdout``): all 70,000 images, 80 % of the normal ones train, the test set is
the other normal images plus every image of the held-out digit (about 35 % anomalies), and
the AUPRC is the trapezoid ``auc(recall, precision)``. Each model is trained once on that
training set and scored on both of its test sets: ``zenati`` as published (its normal test
images come from a second permutation, so about 80 % of them were trained on) and
``zenati-disjoint`` (none were). A PCA-reconstruction scorer (``--pca-components``
components fitted to the same training images) is the floor row. ``--protocol none`` is the
earlier table: the 60,000 training images minus the digit, the whole 10k test split
(~10 % anomalies).

Writes ``OUT/anomaly_mnist.json`` (every run, the summary, the paper's numbers, wall times,
hardware, command), ``OUT/anomaly_mnist.md`` and ``OUT/anomaly_mnist.png`` (bars by digit).
Finished runs are reused on a rerun, and every score is cached in ``OUT/scores.json`` (per
checkpoint), so an interrupted scoring pass continues too. The paper's LEBM numbers are
means ± sd over its last 10 epochs of a longer training; ours score the final model of a
fixed budget (``--steps``), chosen so the whole table fits in hours on a 2-core CPU, and
beside it (``--spread-last 10 --spread-every 100``, the default) the mean ± sd over the
first seed's last 10 checkpoints, 100 steps apart: the same kind of within-run spread over a
shorter stretch. Checkpoints a run did not keep are remade by a branch from an earlier one
(bit-identical continuation). Nothing is chosen by test AUPRC.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, train_runs  # noqa: E402

PAPER = {  # REFERENCE §1.6 Table 4 (AUPRC); VAE copied by the paper from earlier work
    "LEBM (paper)": {1: 0.336, 4: 0.630, 5: 0.619, 7: 0.463, 9: 0.413},
    "VAE (paper)": {1: 0.063, 4: 0.337, 5: 0.325, 7: 0.148, 9: 0.104},
}
PAPER_JOINT = {  # REFERENCE §3.5, MNIST AUPRC under the same protocol
    "joint EBM (CVPR'23 paper)": {1: 0.470, 4: 0.941, 5: 0.964, 7: 0.815, 9: 0.796},
    "ICCV'23 (paper)": {1: 0.722, 4: 0.949, 5: 0.980, 7: 0.941, 9: 0.935},
}
# model -> preset, per base configuration (--base): ``anomaly-mnist`` is DAMC's MNIST anomaly
# setting on a CPU-sized generator (lebm.methods.lebm.ANOMALY_MNIST_MODEL), ``mnist`` the
# library's MNIST preset (z 16, σ 0.3), whose generator the joint multi-layer presets share
FAMILIES: dict[str, dict[str, str]] = {
    "anomaly-mnist": {"lebm": "anomaly-mnist", "vae": "vae-anomaly-mnist",
                      "abp": "abp-anomaly-mnist", "nce": "nce-anomaly-mnist",
                      "joint": "joint-anomaly-mnist", "joint-inf": "joint-inf-anomaly-mnist",
                      "abp-joint": "abp-joint-anomaly-mnist",
                      "vae-joint": "vae-joint-anomaly-mnist"},
    "mnist": {"lebm": "mnist", "vae": "vae-mnist", "abp": "abp-mnist",
              # the joint multi-layer prior (CVPR'23) and its twins, on the same conv generator
              "joint": "joint-mnist", "joint-inf": "joint-inf-mnist",
              "abp-joint": "abp-joint-mnist", "vae-joint": "vae-joint-mnist",
              # the multi-stage NCE prior (NeurIPS'22) on the same generator; no paper numbers
              "nce": "nce-mnist"}}
PRESETS = FAMILIES["mnist"]  # every model name (the mnist family has them all)
MODEL_NAMES = {"lebm": "LEBM (ours)", "vae": "VAE (ours)", "abp": "ABP (ours)",
               "joint": "joint EBM, 2 layers (ours)", "joint-inf": "joint EBM + q(z|x) (ours)",
               "abp-joint": "hierarchical ABP (ours)", "vae-joint": "hierarchical VAE (ours)",
               "nce": "multi-stage NCE prior (ours)"}
DEFAULT_MODELS = ["lebm", "vae", "abp"]


PROTOCOLS = ("zenati", "none")


def preset_of(model: str, base: str) -> str:
    """The preset that trains ``model`` in the ``base`` family; a clear exit if it has none."""
    if model not in FAMILIES[base]:
        raise SystemExit(f"--base {base} has no {model} preset (it has "
                         f"{', '.join(FAMILIES[base])})")
    return FAMILIES[base][model]


def train_command(model: str, run: Path, digit: int, seed: int, steps: int, threads: int,
                  overrides: list[str], protocol: str = "none", base: str = "mnist") -> list[str]:
    """``lebm train`` of ``model``'s preset in the ``base`` family with ``digit`` held out
    (for ``train_runs``)."""
    cmd = [sys.executable, "-m", "lebm.cli", "train", preset_of(model, base), "--run-dir", str(run),
           "--max-steps", str(steps), "--seed", str(seed), "--overwrite", "--no-progress",
           "--set", f"data.exclude_classes={digit}", "--set", f"train.threads={threads}"]
    if protocol != "none":  # both zenati variants share this training set
        cmd += ["--set", "data.holdout_protocol=zenati"]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def score_protocol(run: Path, digit: int, protocol: str, n_test: int | None,
                   chains: int) -> dict:
    """The figures of ``run`` (a run folder: its latest checkpoint; or a checkpoint folder)
    on the test set of a hold-out ``protocol``."""
    import lebm
    from lebm.data import load_dataset
    from lebm.evaluate.evaluator import anomaly_figures, anomaly_scores

    model = lebm.load(run)
    ds = load_dataset("mnist", "test", exclude_classes=[digit], holdout_protocol=protocol,
                      limit=n_test)
    x = ds.batch(torch.arange(len(ds)))
    scores, _ = anomaly_scores(model, x, torch.Generator().manual_seed(4), "joint", chains)
    assert ds.targets is not None
    return anomaly_figures(scores, ds.targets == digit)


class ScoreCache:
    """Figures already computed, in ``OUT/scores.json``, keyed by checkpoint, test set, chains
    and test-set size; a checkpoint is identified by its ``checksums.json``, so a run trained
    again is scored again. Makes the scoring resumable (it takes tens of minutes)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}

    def score(self, ckpt: Path, digit: int, test: str, n_test: int | None, chains: int) -> dict:
        from lebm.io import atomic_write_json, sha256_file

        stamp = sha256_file(ckpt / "checksums.json")[:16]
        key = f"{ckpt.parent.parent.name}/{ckpt.name}|{stamp}|{test}|{chains}|{n_test}"
        if key not in self.data:
            self.data[key] = score_protocol(ckpt, digit, test, n_test, chains)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, self.data)
        return self.data[key]


def spread_checkpoints(run: Path, cmd: list[str], steps: list[int], jobs: int) -> list[Path]:
    """The checkpoint folders of ``run`` at ``steps``. Those the run did not keep are made
    again by a branch from its newest checkpoint at or before the first of them, with the
    same config and a checkpoint every ``steps[1] - steps[0]`` steps: a branch with an
    unchanged config continues its parent bit for bit, so these are the run's own states.
    The branch lives in ``<run>-every<k>`` next to the run."""
    from lebm.train.checkpoint import step_dir, step_of

    if all(step_dir(run, s).is_dir() for s in steps):
        return [step_dir(run, s) for s in steps]
    every = steps[1] - steps[0]
    have = sorted(n for p in (run / "checkpoints").glob("step_*")
                  if (n := step_of(p.name)) is not None and n <= steps[0])
    if not have:
        raise SystemExit(f"{run} keeps no checkpoint at or before step {steps[0]}")
    branch = run.with_name(f"{run.name}-every{every}")
    i = cmd.index("--run-dir")
    bcmd = [*cmd[:i + 1], str(branch), *cmd[i + 2:], "--from", str(step_dir(run, have[-1])),
            "--set", f"train.checkpoint_every={every}", "--set", "train.keep_checkpoints=1000"]
    train_runs([(branch, bcmd, steps[-1])], jobs)
    return [step_dir(branch, s) for s in steps]


def pca_row(digit: int, components: int, protocol: str, n_test: int | None) -> dict:
    """A PCA-reconstruction scorer: ``‖x − x̂‖²`` with ``components`` principal components of
    the protocol's training images; the floor a generative model should clear."""
    from sklearn.decomposition import PCA

    from lebm.data import load_dataset

    train = load_dataset("mnist", "train", exclude_classes=[digit], holdout_protocol="zenati")
    test = load_dataset("mnist", "test", exclude_classes=[digit], holdout_protocol=protocol,
                        limit=n_test)
    xt = train.batch(torch.arange(len(train))).flatten(1).numpy()
    xs = test.batch(torch.arange(len(test))).flatten(1).numpy()
    pca = PCA(components, random_state=0).fit(xt)
    err = ((xs - pca.inverse_transform(pca.transform(xs))) ** 2).sum(1)
    from lebm.evaluate.evaluator import anomaly_figures

    assert test.targets is not None
    return anomaly_figures(torch.as_tensor(err), test.targets == digit)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digits", type=int, nargs="+", default=[1, 4, 5, 7, 9])
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(PRESETS),
                    help="the joint-* models are the multi-layer prior (CVPR'23) and its "
                         "inference-network / energy-free twins; nce the multi-stage NCE "
                         "prior (NeurIPS'22)")
    ap.add_argument("--base", default="anomaly-mnist", choices=list(FAMILIES),
                    help="anomaly-mnist: DAMC's MNIST anomaly settings, CPU-sized (the "
                         "table's); mnist: the library's MNIST preset (the joint models' "
                         "generator)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--steps", type=int, default=2000,
                    help="training steps per run (anomaly-mnist: batch 128, ~400 steps an "
                         "epoch of the zenati training set)")
    ap.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    ap.add_argument("--threads", type=int, default=0, help="torch threads per run (0 = all)")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="KEY=VALUE", help="extra config override for every run")
    ap.add_argument("--n-test", type=int, default=None, help="test images scored (default all)")
    ap.add_argument("--protocol", default="zenati", choices=PROTOCOLS)
    ap.add_argument("--chains", type=int, default=1, help="posterior draws averaged per score")
    ap.add_argument("--pca-components", type=int, default=16)
    ap.add_argument("--spread-last", type=int, default=10,
                    help="zenati: also score the last K checkpoints of the first seed's runs "
                         "of --spread-models (the papers report LEBM's ± over the last 10 "
                         "epochs of one run); 0 or 1 = off")
    ap.add_argument("--spread-every", type=int, default=100,
                    help="steps between those checkpoints")
    ap.add_argument("--spread-models", nargs="+", default=["lebm"], choices=list(PRESETS))
    ap.add_argument("--out", default="benchmarks/results/anomaly_mnist")
    args = ap.parse_args()
    out = Path(args.out)
    bad = [d for d in args.digits if not 0 <= d <= 9]
    if bad:
        raise SystemExit(f"digits must be 0..9, got {bad}")

    t_start = time.perf_counter()
    jobs = []
    for digit in args.digits:
        for seed in args.seeds:
            for model in args.models:
                run = out / "runs" / f"{model}-d{digit}-s{seed}"
                cmd = train_command(model, run, digit, seed, args.steps, args.threads,
                                    args.overrides, args.protocol, args.base)
                jobs.append((run, cmd, args.steps))
    walls = train_runs(jobs, args.jobs)

    from lebm.evaluate import EvalSettings, evaluate
    from lebm.viz import read_metrics

    if args.threads:
        torch.set_num_threads(args.threads * args.jobs)
    from lebm.train.checkpoint import step_dir

    cache = ScoreCache(out / "scores.json")
    rows: dict[str, dict] = {}
    tests = ["zenati", "zenati-disjoint"] if args.protocol == "zenati" else ["none"]
    for run, _, _ in jobs:
        t0 = time.perf_counter()
        digit = int(run.name.split("-d")[1].split("-")[0])
        row: dict = {"train_seconds": walls[run.name]["seconds"],
                     "epochs": read_metrics(run / "metrics.jsonl")[-1]["epoch"]}
        for test in tests:
            if test == "none":
                rec = evaluate(run, ["auprc"], EvalSettings(n_test=args.n_test, progress=False,
                                                            score_chains=args.chains))
                figures = {k: rec["metrics"]["auprc"][k] for k in
                           ("auprc", "average_precision", "auroc", "anomaly_fraction")}
            else:
                figures = cache.score(step_dir(run, args.steps), digit, test, args.n_test,
                                      args.chains)
            row[test] = figures
        row["score_seconds"] = time.perf_counter() - t0
        rows[run.name] = row
        print(run.name, {t: round(row[t]["auprc"], 4) for t in tests}, flush=True)
    if args.protocol == "zenati":
        for digit in args.digits:
            rows[f"pca-d{digit}"] = {t: pca_row(digit, args.pca_components, t, args.n_test)
                                     for t in tests}

    spread: dict[str, dict[int, dict]] = {}
    if args.protocol == "zenati" and args.spread_last > 1:
        at = [args.steps - i * args.spread_every for i in range(args.spread_last)][::-1]
        if at[0] <= 0:
            raise SystemExit(f"--spread-last {args.spread_last} × --spread-every "
                             f"{args.spread_every} reaches before step 0")
        for run, cmd, _ in jobs:
            model, rest = run.name.split("-d", 1)
            if model not in args.spread_models or not rest.endswith(f"-s{args.seeds[0]}"):
                continue
            digit = int(rest.split("-")[0])
            vals = [cache.score(ckpt, digit, "zenati", args.n_test, args.chains)["auprc"]
                    for ckpt in spread_checkpoints(run, cmd, at, args.jobs)]
            spread.setdefault(model, {})[digit] = {
                "steps": at, "auprc": vals, "mean": statistics.mean(vals),
                "std": statistics.stdev(vals)}
            print(run.name, "spread", f"{statistics.mean(vals):.4f} ± {statistics.stdev(vals):.4f}",
                  flush=True)

    summary: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
    for test in tests:
        summary[test] = {}
        for model in [*args.models, *(["pca"] if args.protocol == "zenati" else [])]:
            summary[test][model] = {}
            for digit in args.digits:
                names = ([f"pca-d{digit}"] if model == "pca" else
                         [f"{model}-d{digit}-s{s}" for s in args.seeds])
                vals = [rows[n][test]["auprc"] for n in names]
                summary[test][model][digit] = {
                    "mean": statistics.mean(vals), "n": len(vals),
                    "std": statistics.stdev(vals) if len(vals) > 1 else None}
    result = {
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "steps": args.steps, "seeds": args.seeds,
        "epochs": statistics.mean(r["epochs"] for r in rows.values() if "epochs" in r),
        "digits": args.digits, "base": args.base,
        "presets": {m: preset_of(m, args.base) for m in args.models},
        "overrides": args.overrides, "results": rows, "summary": summary,
        "spread_last_checkpoints": spread,
        "paper": {**PAPER, **(PAPER_JOINT if any(m.startswith(("joint", "abp-joint",
                                                               "vae-joint"))
                                                 for m in args.models) else {})},
        "wall_seconds_total": time.perf_counter() - t_start,
        "hardware": {**machine(torch.device("cpu")), "platform": platform.platform(),
                     "jobs": args.jobs, "threads_per_run": args.threads or "all"},
        "protocol": args.protocol, "chains": args.chains,
        "recipe": {"train": "80 % of the normal images of all 70,000 (zenati)"
                   if args.protocol == "zenati" else "MNIST train (60k) minus the held-out digit",
                   "test": "zenati: the other normal images + every held-out image (the "
                           "published split, ~80 % of its normals trained on); "
                           "zenati-disjoint: the same without the overlap"
                           if args.protocol == "zenati" else
                           f"MNIST test, {'all 10,000' if args.n_test is None else args.n_test}"
                           " images, held-out digit positive",
                   "score": "−log p̃(x, z) at the model's posterior z (Langevin from noise "
                            "for LEBM/ABP and the joint MLE, encoder mean for the VAE and "
                            "joint-inf; all latent layers for the hierarchical models)"
                            + (f", mean over {args.chains} draws" if args.chains > 1 else ""),
                   "metric": "AUPRC = trapezoid auc(recall, precision) (Zenati et al.); "
                             "average precision and AUROC beside it; final checkpoint",
                   "pca": f"{args.pca_components} components fitted to the training images"},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "anomaly_mnist.json").write_text(json.dumps(result, indent=2))
    (out / "anomaly_mnist.md").write_text(markdown(result))
    plot(result, out / "anomaly_mnist.png")
    print(markdown(result))


def _names(result: dict) -> dict[str, str]:
    return {**MODEL_NAMES,
            "pca": f"PCA reconstruction ({result['recipe']['pca'].split()[0]} components)"}


def plot(result: dict, path: Path) -> None:
    """Bars: each model's AUPRC by held-out digit on the first test set (± the seeds' sd);
    the papers' figures as markers; the anomaly share (chance) as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = next(iter(result["summary"]))
    per_model = result["summary"][test]
    digits = result["digits"]
    names = _names(result)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(digits), 3.8))
    width = 0.8 / max(len(per_model), 1)
    for i, (model, per) in enumerate(per_model.items()):
        cells = [per[d] if d in per else per[str(d)] for d in digits]
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(digits))]
        sds = [c["std"] or 0 for c in cells]
        ax.bar(xs, [c["mean"] for c in cells], width, yerr=sds if any(sds) else None,
               label=names[model], capsize=2)
    for (name, vals), marker in zip(result["paper"].items(), "o^sD", strict=False):
        ys = [vals[d] if d in vals else vals.get(str(d)) for d in digits]
        ax.plot(range(len(digits)), ys, marker, color="black", mfc="none", ls="none",
                label=name)
    share = [result["results"][f"pca-d{d}"][test]["anomaly_fraction"]
             for d in digits if f"pca-d{d}" in result["results"]]
    if share:
        ax.axhline(sum(share) / len(share), color="gray", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(digits)), [f"digit {d}" for d in digits])
    ax.set_ylabel("AUPRC")
    ax.set_ylim(0, 1)
    ax.set_title(f"MNIST anomaly detection, test set {test}", fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def markdown(result: dict) -> str:
    """One table per test set (zenati, zenati-disjoint; or the earlier whole-test-split)."""
    digits = result["digits"]
    names = _names(result)
    n_seeds = len(result["seeds"])
    hw = result["hardware"]
    lines: list[str] = []
    for test, per_model in result["summary"].items():
        lines += [f"**Test set: {test}**", "",
                  "| model | " + " | ".join(f"digit {d}" for d in digits) + " |",
                  "|---|" + "---|" * len(digits)]
        for model, per in per_model.items():
            cells = []
            for d in digits:
                s = per[d] if d in per else per[str(d)]
                cells.append(f"{s['mean']:.3f}" + (f" ± {s['std']:.3f}" if s["std"] else ""))
            lines.append(f"| {names[model]} | " + " | ".join(cells) + " |")
        if test == "zenati":
            for model, per in result.get("spread_last_checkpoints", {}).items():
                first = next(iter(per.values()))
                cells = [f"{per[k]['mean']:.3f} ± {per[k]['std']:.3f}"
                         if (k := d if d in per else str(d)) in per else "–" for d in digits]
                lines.append(f"| {names[model]}, mean ± sd over its last {len(first['steps'])} "
                             f"checkpoints (steps {first['steps'][0]}–{first['steps'][-1]}, "
                             f"seed {result['seeds'][0]}) | " + " | ".join(cells) + " |")
        if test != "zenati-disjoint":
            for name, vals in result["paper"].items():
                lines.append(f"| {name} | " + " | ".join(
                    f"{vals[d]:.3f}" if d in vals else f"{vals.get(str(d), float('nan')):.3f}"
                    for d in digits) + " |")
        lines.append("")
    lines += [f"AUPRC (trapezoid), held-out digit positive; {result['steps']} steps "
              f"({result['epochs']:.1f} epochs) per run, {n_seeds} seed(s)"
              + (" (mean ± std)" if n_seeds > 1 else "") + f"; {hw['cpu']}, "
              f"torch {hw['torch']}; total wall time {result['wall_seconds_total'] / 3600:.2f} h.",
              f"Command: `{result['command']}`"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
