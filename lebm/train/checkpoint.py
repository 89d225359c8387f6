"""Checkpoints: ``checkpoints/step_XXXXXXXX/`` holding a model folder plus training state.

Layout of one checkpoint::

    config.json           model constructor arguments (as ``save_pretrained``)
    model.safetensors     weights
    training_state.pt     optimisers, schedulers, step, RNG states — plain tensors and
                          containers only, loaded with ``torch.load(weights_only=True)``

A checkpoint is written into a temporary folder which is then renamed, and the
``latest`` pointer file is replaced atomically afterwards, so a kill at any moment
leaves the previous complete checkpoint loadable.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from lebm.errors import CheckpointError
from lebm.io import atomic_write, atomic_write_text, fsync_dir
from lebm.models import LatentModel

STATE_FILE = "training_state.pt"
REQUIRED = ("config.json", "model.safetensors", STATE_FILE)
_STEP_DIR = re.compile(r"^step_(\d{8})$")


def checkpoint_root(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def step_dir(run_dir: str | os.PathLike, step: int) -> Path:
    """The folder of checkpoint ``step`` in a run: ``checkpoints/step_NNNNNNNN``."""
    return checkpoint_root(run_dir) / f"step_{step:08d}"


def step_of(name: str | None) -> int | None:
    """The step in a checkpoint folder name ``step_NNNNNNNN``; ``None`` for anything else."""
    m = _STEP_DIR.match(name or "")
    return int(m.group(1)) if m else None


def is_complete(ckpt: Path) -> bool:
    return ckpt.is_dir() and all((ckpt / f).is_file() for f in REQUIRED)


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: LatentModel,
                    state: dict[str, Any], keep: int = 3) -> Path:
    """Write checkpoint ``step`` atomically, move ``latest`` to it, prune to ``keep``."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = step_dir(run_dir, step)
    tmp = root / f".tmp_step_{step:08d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    atomic_write(tmp / STATE_FILE, lambda p: torch.save(state, p))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    atomic_write_text(root / "latest", final.name + "\n")
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    steps = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name))
    for old in steps[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp_step_*"):  # left by a kill during an earlier write
        shutil.rmtree(stale, ignore_errors=True)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """The checkpoint named by ``latest``; else the newest complete ``step_*`` folder."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        raise CheckpointError(f"{run_dir} has no checkpoints/ folder: is it a lebm run folder?")
    pointer = root / "latest"
    if pointer.is_file():
        target = root / pointer.read_text().strip()
        if is_complete(target):
            return target
    complete = sorted(p for p in root.iterdir() if _STEP_DIR.match(p.name) and is_complete(p))
    if not complete:
        raise CheckpointError(f"{root} holds no complete checkpoint")
    return complete[-1]


def load_training_state(ckpt: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load ``training_state.pt`` with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        return torch.load(ckpt / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {ckpt / STATE_FILE}: {exc}") from exc
