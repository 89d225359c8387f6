"""A run folder as the rest of the library reads it: its config, its data, its device.

``lebm train`` writes a run folder (``lebm.train``); the CLI, ``lebm.evaluate`` and the
benchmarks read it through these functions::

    cfg = read_run_config("runs/demo")           # the RunConfig it was trained with
    train = load_data(cfg, "train")              # its data, with the run's subset options
    x = load_heldout(cfg, 64)                    # held-out examples for pictures
    device = resolve_device(cfg.train.device)
"""

from __future__ import annotations

from pathlib import Path

import torch

from lebm.config import RunConfig
from lebm.data import ArrayDataset, DownloadError, load_dataset
from lebm.errors import ConfigError, DataError
from lebm.io import read_json_config

RUN_FORMAT = "lebm-run"


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a CUDA device without CUDA is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name} but CUDA is not available; use cpu or auto")
    return device


def load_data(cfg: RunConfig, split: str = "train", limit: int | None = None, *,
              all_classes: bool = False, subset: bool | None = None) -> ArrayDataset:
    """A split of the run's data set with the run's options: its class filters (none with
    ``all_classes``) and, with ``subset`` (default: on the training split), its labelled
    subset and ``data.limit``; ``limit`` keeps the first examples. ``"train"`` means the
    split the run trains on, ``data.train_split``."""
    d = cfg.data
    subset = split == "train" if subset is None else subset
    if split == "train":
        split = d.train_split
    protocol = d.holdout_protocol
    if protocol is not None:  # the held-out classes define its splits: keep them
        all_classes = False
    try:
        return load_dataset(
            d.name, split, d.root, image_size=d.image_size,
            exclude_classes=() if all_classes else d.exclude_classes,
            classes=None if all_classes else d.classes, holdout_protocol=protocol,
            n_labels=d.n_labels if subset else None,
            limit=limit if limit is not None else (d.limit if subset else None),
            seed=cfg.train.seed, download=d.download,
            mask_unlabelled=d.mask_unlabelled and subset,
            label_column=d.label_column, binarize=d.binarize,
            max_length=d.max_length, vocab_size=d.vocab_size,
        )
    except (ValueError, OSError, DownloadError) as exc:  # missing/corrupt files, bad options
        raise DataError(f"{d.name} ({split}): {exc}") from exc


def load_heldout(cfg: RunConfig, n: int) -> ArrayDataset:
    """``n`` examples of the test split (same class filters); the train split if none."""
    split = cfg.data.test_split
    if split:
        try:
            return load_data(cfg, split, limit=n)
        except DataError:
            pass
    return load_data(cfg, "train", limit=n)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The ``RunConfig`` of a run folder (configs of earlier versions are upgraded)."""
    meta = read_json_config(Path(run_dir) / "config.json", RUN_FORMAT, "run")
    return RunConfig.from_dict(meta["config"])
