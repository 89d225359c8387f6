"""Command line: ``lebm train | resume | sample | reconstruct | presets``.

Parsing and printing only; the work happens in ``lebm.train`` and the model. Errors
caused by input (bad keys, missing data, corrupt checkpoints) print one line and exit
with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lebm.errors import LebmError


def _parser() -> argparse.ArgumentParser:
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
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    r = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--max-steps", type=int, help="new total number of steps")
    r.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("sample", help="write a grid of samples from a trained run")
    s.add_argument("run_dir", type=Path, help="run folder or model folder")
    s.add_argument("--n", type=int, default=64, help="number of samples")
    s.add_argument("--out", type=Path, required=True, help="output PNG")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--steps", type=int, help="prior Langevin steps (default: the model's)")

    c = sub.add_parser("reconstruct", help="write held-out images next to their reconstructions")
    c.add_argument("run_dir", type=Path, help="run folder")
    c.add_argument("--out", type=Path, required=True, help="output PNG")
    c.add_argument("--n", type=int, default=32, help="number of images")
    c.add_argument("--split", default=None, help="data split (default: the run's test split)")
    c.add_argument("--seed", type=int, default=0)

    ps = sub.add_parser("presets", help="list presets (one line each)")
    ps.add_argument("--keys", metavar="PRESET", help="list every config key of a preset")
    return p


def _cmd_train(a: argparse.Namespace) -> int:
    from lebm.config import build_config
    from lebm.train import Trainer

    direct = {}
    if a.max_steps is not None:
        direct["train.max_steps"] = a.max_steps
    if a.seed is not None:
        direct["train.seed"] = a.seed
    if a.no_progress:
        direct["train.progress"] = False
    cfg = build_config(a.preset, a.overrides, **direct)
    trainer = Trainer(cfg, a.run_dir, overwrite=a.overwrite)
    last = trainer.fit()
    _report(trainer, last)
    return 0


def _cmd_resume(a: argparse.Namespace) -> int:
    from lebm.train import Trainer

    if a.max_steps is not None and a.max_steps < 0:
        raise LebmError(f"--max-steps must be >= 0, got {a.max_steps}")
    trainer = Trainer.resume(a.run_dir, a.max_steps)
    if a.no_progress:
        trainer.cfg.train.progress = False
    if trainer.dist.is_main:
        print(f"resuming {a.run_dir} at step {trainer.step} of {trainer.cfg.train.max_steps}")
    last = trainer.fit()
    _report(trainer, last)
    return 0


def _report(trainer, last: dict) -> None:
    if not trainer.dist.is_main:
        return
    rd = trainer.run_dir
    keys = [k for k in ("loss_generator", "loss_energy", "mse") if k in last]
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
    x = model.sample(a.n, gen, **({} if a.steps is None else {"n_steps": a.steps}))
    if x.dim() == 4:
        save_image_grid(x, a.out)
    else:
        save_scatter({"samples": x[:, :2]}, a.out)
    print(f"wrote {a.n} samples to {a.out}")
    return 0


def _cmd_reconstruct(a: argparse.Namespace) -> int:
    import torch

    import lebm
    from lebm.train.trainer import load_data, load_heldout, read_run_config
    from lebm.viz import save_pairs_grid

    if a.n < 1:
        raise LebmError(f"--n must be >= 1, got {a.n}")
    cfg = read_run_config(a.run_dir)
    model = lebm.load(a.run_dir)
    data = load_data(cfg, a.split, limit=a.n) if a.split else load_heldout(cfg, a.n)
    x = data.batch(torch.arange(min(a.n, len(data))))
    if x.dim() != 4:
        raise LebmError("reconstruct writes image grids; this run's data are not images")
    recon = model.reconstruct(x, torch.Generator().manual_seed(a.seed))
    mse = float((recon - x).pow(2).mean())
    save_pairs_grid(x, recon, a.out)
    print(f"wrote {len(x)} originals and reconstructions (pairs, left = original) to {a.out}; "
          f"MSE per pixel in [-1, 1] = {mse:.5f}")
    return 0


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
            "reconstruct": _cmd_reconstruct, "presets": _cmd_presets}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except LebmError as exc:
        print(f"lebm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
