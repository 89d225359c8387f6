"""Command line: ``lebm train | resume | sample | reconstruct | eval | score | classify |
presets``.

Parsing and printing only; the work happens in ``lebm.train`` and the model. Errors
caused by input (bad keys, missing data, corrupt checkpoints) print one line and exit
with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lebm.errors import LebmError


def build_parser() -> argparse.ArgumentParser:
    """The ``lebm`` argument parser (public: benchmarks parse train commands with it)."""
    from lebm.config import RESUME_SETTINGS

    p = argparse.ArgumentParser(prog="lebm", description="Latent-space energy-based models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a preset into a run folder")
    t.add_argument("preset", help="preset name (see `lebm presets`)")
    t.add_argument("--run-dir", required=True, type=Path, help="run folder to create")
    t.add_argument("--max-steps", type=int, help="training steps (overrides the preset)")
    t.add_argument("--seed", type=int, help="random seed (overrides the preset)")
    t.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set model.prior_steps=30 (repeatable)")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--from", dest="branch_from", type=Path, metavar="RUN_OR_CHECKPOINT",
                   help="branch: start from a trained run's latest checkpoint (or a "
                   "checkpoint folder, RUN/checkpoints/step_NNNNNNNN) with this config: "
                   "weights, optimiser moments, step and random streams are the parent's, "
                   "every setting (learning rates included) the new config's; the "
                   "architecture must match")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    r = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--max-steps", type=int, help="new total number of steps")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting that does not change what the run learns (train."
                        + ", train.".join(RESUME_SETTINGS) + "); repeatable; kept for later "
                        "resumes")

    s = sub.add_parser("sample", help="write a grid of samples (sentences: a text file) from "
                       "a trained run")
    s.add_argument("run_dir", type=Path, help="run folder or model folder")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", type=Path, required=True, help="output PNG (text runs: .txt)")
    s.add_argument("--decode", choices=("greedy", "sample"), default="greedy",
                   help="text runs: the most likely word at each position, or sampled words")
    s.add_argument("--temperature", type=float, default=1.0,
                   help="text runs with --decode sample: softmax temperature")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=int, help="prior chain steps (default: the model's)")
    s.add_argument("--step-size", type=float, help="prior chain step size (default: the "
                   "model's)")
    s.add_argument("--kernel", help="prior chain kernel: langevin, mala, hmc or kinetic "
                   "(lmc, the GEBM paper's name, is kinetic; default: the model's)")
    s.add_argument("--friction", type=float,
                   help="kinetic Langevin friction κ (default: the model's)")
    s.add_argument("--class", dest="class_", type=int, metavar="K",
                   help="sample symbol K of a symbol-vector prior (SV-EBM runs)")
    s.add_argument("--vary-layers", type=int, metavar="V", help="hierarchical runs: the "
                   "layer-semantics figure instead, one panel per latent layer: --n prior "
                   "samples a row, each followed by V redraws of that layer with the others "
                   "kept")

    c = sub.add_parser("reconstruct", help="write held-out images (or sentences) next to "
                       "their reconstructions")
    c.add_argument("run_dir", type=Path, help="run folder")
    c.add_argument("--out", type=Path, required=True, help="output PNG (text runs: .txt)")
    c.add_argument("--n", type=int, default=32, help="number of images or sentences")
    c.add_argument("--split", default=None, help="data split (default: the run's test split)")
    c.add_argument("--seed", type=int, default=0)

    e = sub.add_parser("eval", help="evaluate a trained run; writes RUN/eval.json")
    e.add_argument("run_dir", type=Path, help="run folder")
    e.add_argument("--metrics", help="comma-separated: mse,fid,fd_mnist,ll,auprc,chains "
                   "(default: every one that applies; fid only on a GPU)")
    e.add_argument("--n-samples", type=int, default=5000, help="samples for fid / fd_mnist")
    e.add_argument("--n-test", type=int, help="test examples for mse / auprc (default: all)")
    e.add_argument("--n-ll", type=int, default=100, help="test examples for the ll estimate")
    e.add_argument("--n-is", type=int, default=500, help="text ll: importance-sampling draws "
                   "per sentence (the papers' 500)")
    e.add_argument("--n-ref", type=int, help="training images for FID reference statistics "
                   "(default: all)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--split", help="evaluate on this split instead of the run's test split, "
                   "e.g. valid (results kept apart as METRIC@SPLIT)")
    e.add_argument("--anomaly-score", default="joint", choices=("joint", "marginal"),
                   help="auprc: joint −log p̃(x, z) (the papers') or marginal −log p(x)")
    e.add_argument("--posterior-steps", type=int, default=None, metavar="K",
                   help="posterior Langevin steps for every metric that infers z (default: "
                        "the trained length; e.g. longer for a run trained with persistent "
                        "chains); results kept apart as METRIC@posteriorK")
    e.add_argument("--score-chains", type=int, default=1,
                   help="auprc with the joint score: mean over this many posterior draws")
    e.add_argument("--checkpoint", help="a step folder under RUN/checkpoints, e.g. "
                   "step_00002000 (default: the latest)")
    e.add_argument("--device", default="auto")
    e.add_argument("--cache-dir", type=Path, help="where FID reference statistics are cached")
    e.add_argument("--no-progress", action="store_true")

    sc = sub.add_parser("score", help="per-example anomaly scores (−log p̃(x, z)) to a CSV")
    _data_args(sc)
    sc.add_argument("--anomalies", help="comma-separated classes counted as anomalies for "
                    "AUPRC (default: the run's data.exclude_classes)")
    sc.add_argument("--protocol", choices=("zenati", "zenati-disjoint"),
                    help="score the test set of this hold-out protocol (lebm.data.holdout), "
                    "the anomalies held out, instead of --split")
    sc.add_argument("--score", default="joint", choices=("joint", "marginal"),
                    help="joint: −log p̃(x, z) at posterior draws (the papers'); marginal: "
                    "−log p(x) by importance sampling")
    sc.add_argument("--chains", type=int, default=1, help="joint: mean over this many draws")
    sc.add_argument("--out", type=Path, required=True, help="output CSV (index,label,score)")

    cl = sub.add_parser("classify", help="predict classes with a symbol-vector prior model")
    _data_args(cl)
    cl.add_argument("--out", type=Path, required=True,
                    help="output CSV (index,label,predicted,p_0..p_K-1)")

    ps = sub.add_parser("presets", help="list presets (one line each)")
    ps.add_argument("--keys", metavar="PRESET", help="list every config key of a preset")
    return p


def _data_args(p: argparse.ArgumentParser) -> None:
    """The run and the data a per-example command reads."""
    p.add_argument("run_dir", type=Path, help="run folder or model folder")
    p.add_argument("--data", required=True, help="data set name (see lebm.data.DATASETS)")
    p.add_argument("--root", help="folder or file of the data (csv, idx, image-folder, ...)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, help="the first N examples only")
    p.add_argument("--label-column", help="csv data: the label column (name or index)")
    p.add_argument("--binarize", action="store_true",
                   help="images: pixels to exactly -1 or 1 (for likelihood=bernoulli models)")
    p.add_argument("--seed", type=int, default=0)


def train_config(a: argparse.Namespace):
    """The run config of parsed ``lebm train`` arguments: preset, ``--set`` overrides and
    the direct flags (``--max-steps``, ``--seed``, ``--no-progress``)."""
    from lebm.config import build_config

    direct: dict[str, Any] = {}
    if a.max_steps is not None:
        direct["train.max_steps"] = a.max_steps
    if a.seed is not None:
        direct["train.seed"] = a.seed
    if a.no_progress:
        direct["train.progress"] = False
    return build_config(a.preset, a.overrides, **direct)


def _cmd_train(a: argparse.Namespace) -> int:
    from lebm.train import Trainer

    cfg = train_config(a)
    trainer = Trainer(cfg, a.run_dir, overwrite=a.overwrite, branch_from=a.branch_from)
    if trainer.branched_from is not None and trainer.dist.is_main:
        print(f"branched from {trainer.branched_from['checkpoint']} at step {trainer.step}")
    last = trainer.fit()
    _report(trainer, last)
    return 0


def _cmd_resume(a: argparse.Namespace) -> int:
    from lebm.train import Trainer

    if a.max_steps is not None and a.max_steps < 0:
        raise LebmError(f"--max-steps must be >= 0, got {a.max_steps}")
    trainer = Trainer.resume(a.run_dir, a.max_steps, a.overrides)
    if a.no_progress:
        trainer.cfg.train.progress = False
    if trainer.step >= trainer.cfg.train.max_steps:
        trainer.lock.release()
        if trainer.dist.is_main:
            print(f"{a.run_dir} is complete (step {trainer.step}); nothing to do (resume with "
                  "a larger --max-steps to train on)")
        return 0
    if trainer.dist.is_main:
        print(f"resuming {a.run_dir} at step {trainer.step} of {trainer.cfg.train.max_steps}")
    last = trainer.fit()
    _report(trainer, last)
    return 0


def _report(trainer, last: dict) -> None:
    if not trainer.dist.is_main:
        return
    rd = trainer.run_dir
    keys = [k for k in ("loss_generator", "loss_energy", "loss_model", "mse") if k in last]
    summary = ", ".join(f"{k}={last[k]:.4g}" for k in keys)
    print(f"done: step {trainer.step} ({summary}); run folder {rd} "
          f"(samples/, plots/, checkpoints/, metrics.jsonl)")


def _cmd_sample(a: argparse.Namespace) -> int:
    import torch

    import lebm
    from lebm.viz import save_image_grid, save_scatter

    if a.n < 1:
        raise LebmError(f"--n must be >= 1, got {a.n}")
    if a.steps is not None and a.steps < 0:
        raise LebmError(f"--steps must be >= 0, got {a.steps}")
    model = lebm.load(a.run_dir)
    gen = torch.Generator().manual_seed(a.seed)
    if a.vary_layers is not None:
        return _vary_layers(model, a, gen)
    kernel = KERNEL_ALIASES.get(a.kernel, a.kernel)
    try:
        x = model.sample(a.n, gen, class_=a.class_, n_steps=a.steps, step_size=a.step_size,
                         kernel=kernel, friction=a.friction, greedy=a.decode == "greedy",
                         temperature=a.temperature)
    except ValueError as exc:  # bad chain settings, a class out of range, no symbols
        raise LebmError(str(exc)) from exc
    if model.reads_data:
        _write_sentences(model, x, a.out)
        print(f"wrote {a.n} sentences ({a.decode} decoding) to {a.out}")
        return 0
    if x.dim() == 4:
        save_image_grid(x, a.out)
    else:
        save_scatter({"samples": x[:, :2]}, a.out)
    print(f"wrote {a.n} samples to {a.out}")
    return 0


def _write_sentences(model: Any, ids: Any, out: Path) -> None:
    """One sentence a line (token ids where the model has no vocabulary)."""
    from lebm.io import atomic_write_text

    atomic_write_text(out, "".join(line + "\n" for line in model.sentences(ids)))


# other names of the kernels, as the papers call them
KERNEL_ALIASES = {"lmc": "kinetic", "ula": "langevin"}


def _vary_layers(model: Any, a: argparse.Namespace, gen: Any) -> int:
    """``lebm sample --vary-layers V``: the layer-semantics figure of a hierarchical run."""
    import torch

    from lebm.viz import save_layer_figure

    if a.vary_layers < 1:
        raise LebmError(f"--vary-layers must be >= 1, got {a.vary_layers}")
    if not hasattr(model, "resample_layer"):
        raise LebmError(f"{a.run_dir} is a {type(model).__name__}: --vary-layers needs a model "
                        "with latent layers (the joint-* and iccv-* presets and their twins)")
    if a.class_ is not None:
        raise LebmError("--class and --vary-layers do not go together")
    n, v = min(a.n, 16), a.vary_layers
    overrides = dict(n_steps=a.steps, step_size=a.step_size,
                     kernel=KERNEL_ALIASES.get(a.kernel, a.kernel), friction=a.friction)
    try:
        z, _ = model.sample_latent(n, gen, **overrides)
        panels, titles = [], []
        for level in range(model.latent.n_layers):
            redrawn = [model.resample_layer(z, level, gen, **overrides) for _ in range(v)]
            zs = torch.stack([z, *redrawn], 1)  # (n, 1 + v, dim)
            with torch.no_grad():
                x = model.decode(zs.flatten(0, 1))
            if x.dim() != 4:
                raise LebmError("--vary-layers draws images; this run's data are not images")
            panels.append(x.view(n, 1 + v, *x.shape[1:]))
            titles.append(f"z{level + 1} ({model.latent.sizes[level]}-d) redrawn")
    except ValueError as exc:
        raise LebmError(str(exc)) from exc
    save_layer_figure(panels, titles, a.out)
    print(f"wrote the layer figure ({n} samples, {v} redraws of each of "
          f"{model.latent.n_layers} layers; first column: the sample) to {a.out}")
    return 0


def _cmd_reconstruct(a: argparse.Namespace) -> int:
    import torch

    import lebm
    from lebm.metrics.scores import reconstruction_mse
    from lebm.run import load_data, load_heldout, read_run_config
    from lebm.viz import save_pairs_grid

    if a.n < 1:
        raise LebmError(f"--n must be >= 1, got {a.n}")
    cfg = read_run_config(a.run_dir)
    model = lebm.load(a.run_dir)
    data = load_data(cfg, a.split, limit=a.n) if a.split else load_heldout(cfg, a.n)
    x = data.batch(torch.arange(min(a.n, len(data))))
    if model.reads_data:
        return _reconstruct_sentences(model, x, a)
    if x.dim() != 4:
        raise LebmError("reconstruct writes image grids; this run's data are not images")
    recon = model.reconstruct(x, torch.Generator().manual_seed(a.seed))
    mse = reconstruction_mse(x, recon)["mse"]
    save_pairs_grid(x, recon, a.out)
    print(f"wrote {len(x)} originals and reconstructions (pairs, left = original) to {a.out}; "
          f"MSE per pixel in [-1, 1] = {mse:.5f}")
    return 0


def _reconstruct_sentences(model: Any, x: Any, a: argparse.Namespace) -> int:
    """``lebm reconstruct`` of a text run: each sentence, then its greedy reconstruction."""
    import torch

    from lebm.io import atomic_write_text

    recon = model.reconstruct(x, torch.Generator().manual_seed(a.seed))
    lines = []
    same = 0
    for s_orig, s_rec in zip(model.sentences(x), model.sentences(recon)):
        same += s_orig == s_rec
        lines += [f"  {s_orig}\n", f"> {s_rec}\n"]
    atomic_write_text(a.out, "".join(lines))
    print(f"wrote {len(x)} sentences and their reconstructions (lines '  ' original, '> ' "
          f"reconstruction) to {a.out}; {same} of {len(x)} reconstructed exactly")
    return 0


def _cmd_eval(a: argparse.Namespace) -> int:
    from lebm.evaluate import EvalSettings, evaluate, format_table

    metrics = [m.strip() for m in a.metrics.split(",") if m.strip()] if a.metrics else None
    settings = EvalSettings(n_samples=a.n_samples, n_test=a.n_test, n_ll=a.n_ll, n_ref=a.n_ref,
                            seed=a.seed, progress=not a.no_progress, cache_dir=a.cache_dir,
                            split=a.split, anomaly_score=a.anomaly_score,
                            score_chains=a.score_chains, n_is=a.n_is,
                            posterior_steps=a.posterior_steps)
    record = evaluate(a.run_dir, metrics, settings, a.device, a.checkpoint)
    print(format_table(record))
    print(f"wrote {a.run_dir / 'eval.json'} (values with their recipes)")
    return 0


def _cmd_score(a: argparse.Namespace) -> int:
    import torch

    import lebm
    from lebm.evaluate.evaluator import anomaly_figures, anomaly_scores
    from lebm.io import atomic_write_text

    anomalies = _anomaly_classes(a)  # bad arguments fail before any work or output
    if a.chains < 1:
        raise LebmError(f"--chains must be >= 1, got {a.chains}")
    if a.protocol and not anomalies:
        raise LebmError("--protocol needs the held-out classes: --anomalies, or a run trained "
                        "with data.exclude_classes")
    model = lebm.load(a.run_dir)
    ds = _load_for_model(a, model, protocol=a.protocol, anomalies=anomalies)
    x = ds.batch(torch.arange(len(ds)))
    try:
        scores, what = anomaly_scores(model, x, torch.Generator(device=model.device)
                                      .manual_seed(a.seed), a.score, a.chains)
    except ValueError as exc:  # data this model cannot take
        raise LebmError(str(exc)) from exc
    labels = ds.targets.tolist() if ds.targets is not None else [""] * len(ds)
    lines = ["index,label,score"] + [f"{i},{y},{s:.6g}"
                                     for i, (y, s) in enumerate(zip(labels, scores.tolist()))]
    atomic_write_text(a.out, "\n".join(lines) + "\n")
    print(f"wrote {len(ds)} anomaly scores (higher = more anomalous: {what}) to {a.out}")
    if anomalies and ds.targets is not None:
        positive = torch.isin(ds.targets, torch.tensor(anomalies))
        if 0 < int(positive.sum()) < len(ds):
            f = anomaly_figures(scores, positive)
            print(f"anomalies = classes {anomalies}: AUPRC {f['auprc']:.4f} (trapezoid), "
                  f"average precision {f['average_precision']:.4f}, AUROC {f['auroc']:.4f} "
                  f"(anomaly share {f['anomaly_fraction']:.3f})")
    return 0


def _apply_to_data(a: argparse.Namespace, method: str):
    """``(data set, model.<method>(x, generator) on all of it, labels as printable values)``
    for the run and the data named on the command line."""
    import torch

    import lebm

    model = lebm.load(a.run_dir)
    ds = _load_for_model(a, model)
    x = ds.batch(torch.arange(len(ds))).to(model.device)
    try:
        out = getattr(model, method)(x, torch.Generator(device=model.device).manual_seed(a.seed))
    except ValueError as exc:  # wrong data shape for this model, or no symbol-vector prior
        raise LebmError(str(exc)) from exc
    labels = ds.targets.tolist() if ds.targets is not None else [""] * len(ds)
    return ds, out.cpu(), labels


def _load_for_model(a: argparse.Namespace, model, protocol: str | None = None,
                    anomalies: list[int] | None = None):
    """The data named on the command line, resized to the model's images if needed (with
    ``protocol``: that hold-out protocol's test set, ``anomalies`` held out)."""
    from lebm.data import load_dataset

    if a.limit is not None and a.limit < 1:
        raise LebmError(f"--limit must be >= 1, got {a.limit}")
    image_size = model.data_shape[-1] if len(model.data_shape) == 3 else None
    extra = {"label_column": a.label_column} if getattr(a, "label_column", None) else {}
    try:
        if protocol:
            extra.update(holdout_protocol=protocol, exclude_classes=anomalies or [])
        return load_dataset(a.data, "test" if protocol else a.split, a.root,
                            image_size=image_size, limit=a.limit, binarize=a.binarize, **extra)
    except (ValueError, OSError) as exc:
        raise LebmError(f"{a.data} ({a.split}): {exc}") from exc


def _cmd_classify(a: argparse.Namespace) -> int:

    from lebm.io import atomic_write_text
    from lebm.metrics.scores import accuracy

    ds, logits, labels = _apply_to_data(a, "classify")
    probs = logits.softmax(1)
    pred = probs.argmax(1)
    k = probs.shape[1]
    lines = ["index,label,predicted," + ",".join(f"p_{j}" for j in range(k))]
    for i, (y, p, row) in enumerate(zip(labels, pred.tolist(), probs.tolist())):
        lines.append(f"{i},{y},{p}," + ",".join(f"{v:.5g}" for v in row))
    atomic_write_text(a.out, "\n".join(lines) + "\n")
    print(f"wrote {len(ds)} predictions to {a.out}")
    if ds.targets is not None:
        known = ds.targets >= 0
        if bool((ds.targets[known] >= k).any()):
            print(f"lebm: warning: the data have labels up to {int(ds.targets.max())} but the "
                  f"model has {k} symbols (0..{k - 1}): no accuracy reported, these are not "
                  "the classes it was trained on", file=sys.stderr)
        elif known.any():
            acc = accuracy(pred[known], ds.targets[known])
            print(f"accuracy {acc:.4f} on {int(known.sum())} labelled examples")
    return 0


def _anomaly_classes(a: argparse.Namespace) -> list[int]:
    if a.anomalies:
        try:
            return [int(c) for c in a.anomalies.split(",") if c.strip()]
        except ValueError:
            raise LebmError(f"--anomalies expects integers, got {a.anomalies!r}") from None
    from lebm.run import read_run_config

    try:
        return list(read_run_config(a.run_dir).data.exclude_classes)
    except LebmError:  # a bare model folder has no run config
        return []


def _cmd_presets(a: argparse.Namespace) -> int:
    from lebm.config import PRESETS, describe_keys, preset_config

    if a.keys:
        for line in describe_keys(preset_config(a.keys)):
            print(line)
        return 0
    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.description}")
    return 0


COMMANDS = {"train": _cmd_train, "resume": _cmd_resume, "sample": _cmd_sample,
            "reconstruct": _cmd_reconstruct, "eval": _cmd_eval, "score": _cmd_score,
            "classify": _cmd_classify, "presets": _cmd_presets}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = 1
    try:
        code = COMMANDS[args.command](args)
        return code
    except LebmError as exc:
        print(f"lebm: error: {exc}", file=sys.stderr)
        code = 2
        return code
    except KeyboardInterrupt as exc:  # 128 + the signal: 130 for Ctrl-C, 143 for SIGTERM
        code = 128 + int(getattr(exc, "signum", 2))
        return code
    except OSError as exc:  # an output or folder that cannot be written, a full disk
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lebm: error: {exc.strerror or exc}{where}", file=sys.stderr)
        code = 2
        return code
    finally:
        from lebm.train.distributed import shutdown_distributed

        # after a success every rank is here: meet, then leave the group together
        shutdown_distributed(synchronize=code == 0)


if __name__ == "__main__":
    sys.exit(main())
