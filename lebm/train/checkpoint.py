"""Checkpoints: ``checkpoints/step_XXXXXXXX/`` holding a model folder plus training state.

Layout of one checkpoint::

    config.json           model constructor arguments (as ``save_pretrained``)
    model.safetensors     weights
    training_state.pt     optimisers, schedulers, step, RNG states — plain tensors and
                          containers only, loaded with ``torch.load(weights_only=True)``
    checksums.json        SHA-256 of the three files above

A checkpoint is written into a temporary folder which is then renamed, and the
``latest`` pointer file is replaced atomically afterwards, so a kill at any moment
leaves the previous complete checkpoint loadable. A checkpoint *verifies* when its files
match their checksums (checkpoints of lebm 0.1 have none: they verify when every file
parses); ``latest_checkpoint`` returns the newest one that verifies and says on stderr
which newer ones it skipped and why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from lebm.errors import CheckpointError
from lebm.io import atomic_write, atomic_write_text, fsync_dir, sha256_file
from lebm.models import LatentModel

STATE_FILE = "training_state.pt"
CHECKSUMS = "checksums.json"
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
    """Every required file is there (see ``verify`` for whether they are intact)."""
    return ckpt.is_dir() and all((ckpt / f).is_file() for f in REQUIRED)


def verify(ckpt: Path) -> str | None:
    """``None`` if the checkpoint is intact, else why not (one short phrase).

    With ``checksums.json``: every file matches its SHA-256. Without (lebm 0.1): every file
    parses (the configs as JSON, the weights' header, the training state)."""
    if not ckpt.is_dir():
        return "missing"
    missing = [f for f in REQUIRED if not (ckpt / f).is_file()]
    if missing:
        return f"no {', '.join(missing)}"
    sums = ckpt / CHECKSUMS
    if sums.is_file():
        try:
            want = json.loads(sums.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return f"{CHECKSUMS} is not valid JSON"
        bad = [f for f in REQUIRED if want.get(f) != sha256_file(ckpt / f)]
        return f"{', '.join(bad)} does not match its checksum" if bad else None
    try:  # a checkpoint written before checksums: parse every file
        json.loads((ckpt / "config.json").read_text())
        from safetensors import safe_open

        with safe_open(str(ckpt / "model.safetensors"), "pt") as fh:
            list(fh.keys())
        torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:  # many parsers, many error types: any failure = corrupt
        return f"unreadable ({type(exc).__name__})"
    return None


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
    atomic_write_text(tmp / CHECKSUMS, json.dumps({f: sha256_file(tmp / f) for f in REQUIRED},
                                                  indent=2) + "\n")
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
    """The newest checkpoint that verifies: the one ``latest`` names, else the newest
    ``step_*`` folder that verifies (saying on stderr which were skipped, and why)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        raise CheckpointError(f"{run_dir} has no checkpoints/ folder: is it a lebm run folder?")
    pointer = root / "latest"
    named = root / pointer.read_text().strip() if pointer.is_file() else None
    steps = sorted((p for p in root.iterdir() if _STEP_DIR.match(p.name)), reverse=True)
    candidates = ([named] if named is not None else []) + [p for p in steps if p != named]
    skipped: list[str] = []
    for ckpt in candidates:
        why = verify(ckpt)
        if why is None:
            if skipped:
                print(f"lebm: warning: {root}: skipped {'; '.join(skipped)}; using {ckpt.name}",
                      file=sys.stderr)
            return ckpt
        skipped.append(f"{ckpt.name} ({why})")
    raise CheckpointError(f"{root} holds no checkpoint that verifies: "
                          f"{'; '.join(skipped) or 'none was written'}")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder's newest checkpoint that verifies, or a checkpoint folder (verified)."""
    path = Path(path)
    if checkpoint_root(path).is_dir():
        return latest_checkpoint(path)
    if step_of(path.name) is not None and path.is_dir():
        why = verify(path)
        if why is not None:
            raise CheckpointError(f"{path}: {why}")
        return path
    raise CheckpointError(f"{path} is neither a run folder nor a checkpoint folder "
                          "(run/checkpoints/step_NNNNNNNN)")


def load_training_state(ckpt: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load ``training_state.pt`` with ``weights_only=True`` (no arbitrary unpickling)."""
    try:
        return torch.load(ckpt / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {ckpt / STATE_FILE}: {exc}") from exc
