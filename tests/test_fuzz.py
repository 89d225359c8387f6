"""Property-based tests: random config values, damaged data files and damaged checkpoints
end in a correct result or a clear ``lebm`` error — never another exception (a traceback on
the command line) or a partly written folder."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lebm
from lebm import settings as lebm_settings
from lebm.config import build_config, preset_config
from lebm.errors import ConfigError, LebmError
from lebm.run import load_data

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# ---------------------------------------------------------------------------- config

_KEYS = sorted({f"{s}.{p}" for s in ("data", "model", "method", "train")
                for p, _, f in lebm_settings.leaf_paths(getattr(preset_config("digits"), s))})
_TEXT = st.one_of(
    st.text(max_size=12),
    st.integers(-10**25, 10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["true", "false", "none", "[]", "[1,2]", "1,,2", "mlp", "conv", "auto",
                     "langevin", "mala", "-0", "1e400", "0x10", "nan"]),
)


@FUZZ
@given(key=st.sampled_from(_KEYS), value=_TEXT)
def test_any_set_value_is_taken_or_refused_by_name(key, value):
    try:
        cfg = build_config("digits", [f"{key}={value}"])
    except ConfigError as exc:
        assert key in str(exc) or "data.name" in str(exc) or "test_split" in str(exc), exc
        return
    # accepted: the stored value satisfies the field's declared constraints
    section, _, path = key.partition(".")
    owner = getattr(cfg, section)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    field = {f.name: f for f in __import__("dataclasses").fields(owner)}[name]
    lebm_settings.check_value(key, getattr(owner, name), field.metadata)


@FUZZ
@given(n=st.one_of(st.integers(-10**300, 10**300),
                   st.floats(allow_nan=True, allow_infinity=True)))
def test_numeric_limits_are_exact(n):
    """train.batch_size has min 1; model.sigma has gt 0: accepted exactly when in range."""
    for key, ok in (("train.batch_size", isinstance(n, int) and n >= 1),
                    ("model.sigma", math.isfinite(n) and n > 0)):
        try:
            build_config("digits", [f"{key}={n}"])
            accepted = True
        except ConfigError:
            accepted = False
        assert accepted == ok, (key, n)


# ---------------------------------------------------------------------------- data files


def _idx(arr: np.ndarray, code: int) -> bytes:
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + \
        arr.astype(">u1").tobytes()


def _valid_files(kind: str, folder: Path) -> list[Path]:
    """Write a small valid data set of ``kind`` into ``folder``; return its files."""
    rng = np.random.default_rng(0)
    if kind == "idx":
        x = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, 6, dtype=np.uint8)
        files = {"train-images-idx3-ubyte": _idx(x, 0x08), "train-labels-idx1-ubyte": _idx(y, 0x08)}
    elif kind == "cifar10":
        rec = np.concatenate([rng.integers(0, 10, (4, 1)), rng.integers(0, 256, (4, 3072))], 1)
        files = {f"data_batch_{i}.bin": rec.astype(np.uint8).tobytes() for i in range(1, 6)}
    elif kind == "svhn":
        from scipy.io import savemat

        savemat(folder / "train_32x32.mat", {"X": rng.integers(0, 256, (32, 32, 3, 5),
                                                               dtype=np.uint8),
                                             "y": rng.integers(1, 11, (5, 1))})
        return [folder / "train_32x32.mat"]
    elif kind == "csv":
        rows = "".join(f"{rng.normal():.3f},{rng.normal():.3f},{i % 2}\n" for i in range(30))
        files = {"t.csv": ("a,b,label\n" + rows).encode()}
    elif kind == "image-folder":
        from PIL import Image

        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(
                folder / f"im{i}.png")
        return sorted(folder.glob("*.png"))
    else:
        raise ValueError(kind)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / n for n in files]


def _cfg(kind: str, folder: Path):
    name, root = kind, str(folder)
    if kind == "csv":
        root = str(folder / "t.csv")
    return build_config("digits", [f"data.name={name}", f"data.root={root}",
                                   "data.test_split=none",
                                   *(["data.image_size=16"] if kind == "image-folder" else [])])


@pytest.mark.parametrize("kind", ["idx", "cifar10", "svhn", "csv", "image-folder"])
def test_valid_small_files_load(tmp_path, kind):
    _valid_files(kind, tmp_path)
    ds = load_data(_cfg(kind, tmp_path), "train")
    assert len(ds) > 0


@pytest.mark.parametrize("kind", ["idx", "cifar10", "svhn", "csv", "image-folder"])
@FUZZ
@given(data=st.data())
def test_damaged_data_files_give_a_data_error(tmp_path_factory, kind, data):
    folder = tmp_path_factory.mktemp(kind)
    files = _valid_files(kind, folder)
    target = data.draw(st.sampled_from(files))
    raw = target.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "random", "flip", "empty"]))
    if how == "truncate":
        raw = raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)))]
    elif how == "random":
        raw = data.draw(st.binary(max_size=4096))
    elif how == "flip":
        pos = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=8))
        buf = bytearray(raw)
        for p in pos:
            buf[p] ^= data.draw(st.integers(1, 255))
        raw = bytes(buf)
    else:
        raw = b""
    target.write_bytes(raw)
    try:
        ds = load_data(_cfg(kind, folder), "train")
    except LebmError:
        return  # a DataError naming the file: what the CLI prints as one line
    x = ds.batch(torch.arange(len(ds)))  # loaded despite the damage: must be usable data
    assert torch.isfinite(x).all()


# ---------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from lebm.train import Trainer

    from .conftest import TINY

    run = tmp_path_factory.mktemp("fuzz") / "run"
    Trainer(build_config("digits", TINY, **{"train.max_steps": 8,
                                            "train.keep_checkpoints": 2}), run).fit()
    return run


def _same_json(a: bytes, b: bytes) -> bool:
    try:
        return json.loads(a) == json.loads(b)
    except (ValueError, UnicodeDecodeError):
        return False


@FUZZ
@given(data=st.data())
def test_damaged_checkpoints_fall_back_or_fail_clearly(trained_run, tmp_path_factory, data):
    """Random damage to any file of the newest checkpoint: lebm.load and resume use the
    previous checkpoint (which verifies), or, with both damaged, raise a clear error."""
    from lebm.train import Trainer

    run = tmp_path_factory.mktemp("c") / "run"
    shutil.copytree(trained_run, run)
    ckpts = sorted((run / "checkpoints").glob("step_*"))
    damaged = data.draw(st.lists(st.sampled_from(ckpts), min_size=1, max_size=2, unique=True))
    for ckpt in list(damaged):
        target = data.draw(st.sampled_from(sorted(ckpt.iterdir())))
        raw = target.read_bytes()
        cut = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        new = data.draw(st.sampled_from([raw[:cut], raw[:cut] + b"\x00junk",
                                         bytes(reversed(raw))]))
        target.write_bytes(new)
        if target.name == "checksums.json" and _same_json(new, raw):
            damaged.remove(ckpt)  # only its trailing newline went: the checkpoint is intact
    intact = [c for c in ckpts if c not in damaged]
    if intact:
        model = lebm.load(run)
        assert model.sample(2).shape == (2, 1, 8, 8)
        trainer = Trainer.resume(run)
        assert trainer.step == int(intact[-1].name[5:])
        trainer.lock.release()
    else:
        with pytest.raises(LebmError, match="no checkpoint that verifies"):
            lebm.load(run)
        with pytest.raises(LebmError, match="no checkpoint that verifies"):
            Trainer.resume(run)


def test_a_crashing_mat_reader_is_a_data_error(tmp_path, monkeypatch):
    """scipy's MATLAB reader has segfaulted on fuzzed SVHN files; it runs in a child, whose
    crash is reported as a corrupt file instead of killing the caller."""
    from lebm.data import formats

    _valid_files("svhn", tmp_path)
    monkeypatch.setattr(formats, "_LOADMAT", "import os, signal; os.kill(os.getpid(), "
                                             "signal.SIGSEGV)")
    with pytest.raises(LebmError, match=r"the reader crashed \(signal 11\)"):
        load_data(_cfg("svhn", tmp_path), "train")
