"""``load_dataset``: one entry point for every data set, with the selection options.

Order of operations: load the split -> keep ``classes`` / drop ``exclude_classes`` ->
first ``limit`` examples -> balanced labelled subset of ``n_labels`` (drawn with
``seed``; with ``mask_unlabelled=True`` the other examples are kept with label ``-1``)
-> resize to ``image_size``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import sources
from .dataset import ArrayDataset, DatasetNotFoundError
from .holdout import concatenation_order, holdout_split
from .images import load_image_files, resize_images
from .tabular import SKLEARN_TABLES, TABULAR, TABULAR_SPLITS, LabelColumn, load_table
from .text import TEXT_SPLITS, load_text_split
from .toy import TOY_GENERATORS, make_toy

DATASETS: tuple[str, ...] = (
    "digits",
    "mnist",
    "mnist5k",
    "fashion-mnist",
    "cifar10",
    "svhn",
    "image-folder",
    "celeba",
    "idx",
    "8gaussians",
    "pinwheel",
    "rings",
    "wine",
    "breast-cancer",
    "csv",
    "ptb",
    "text",
)
ALIASES = {"celeba": "image-folder"}

_IMAGE_SPLITS = ("train", "test")
SPLITS: dict[str, tuple[str, ...]] = {
    "digits": ("train", "test", "all"),
    "mnist": ("train", "test", "valid", "train50k"),
    "mnist5k": ("train", "test", "all"),
    "fashion-mnist": _IMAGE_SPLITS,
    "idx": _IMAGE_SPLITS,
    "cifar10": _IMAGE_SPLITS,
    "svhn": ("train", "test", "extra"),
    "image-folder": ("train", "test", "all"),
    **{toy: ("train", "test", "valid") for toy in TOY_GENERATORS},
    **{table: TABULAR_SPLITS for table in TABULAR},
    "ptb": TEXT_SPLITS,
    "text": TEXT_SPLITS,
}
TEXT = ("ptb", "text")
DEFAULT_IMAGE_FOLDER_SIZE = 64

Arrays = tuple[np.ndarray, np.ndarray | None]
Root = str | os.PathLike[str] | None


def splits(name: str) -> tuple[str, ...]:
    """The split names of data set ``name`` (``ValueError`` for an unknown data set)."""
    return SPLITS[_canonical(name)]


def _canonical(name: str) -> str:
    """Resolve aliases; unknown names raise ValueError listing the valid ones."""
    key = ALIASES.get(name, name)
    if key not in SPLITS:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")
    return key


def _check_options(
    key: str,
    split: str,
    image_size: int | None,
    n_labels: int | None,
    limit: int | None,
    n_samples: int,
    *,
    mask_unlabelled: bool = False,
    label_column: LabelColumn = None,
) -> None:
    """Validate option values before any file is read."""
    if split not in SPLITS[key]:
        raise ValueError(f"split={split!r} is not a split of {key}; choose one of {SPLITS[key]}")
    if image_size is not None and image_size <= 0:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    if image_size is not None and (key in TOY_GENERATORS or key in TABULAR or key in TEXT):
        raise ValueError(f"image_size: {key} is not an image data set; leave image_size unset")
    if n_labels is not None and n_labels <= 0:
        raise ValueError(f"n_labels must be a positive integer, got {n_labels}")
    if mask_unlabelled and n_labels is None:
        raise ValueError(
            "mask_unlabelled=True needs n_labels (how many examples keep their label); "
            "set n_labels or leave mask_unlabelled off"
        )
    if label_column is not None and key != "csv":
        raise ValueError(f"label_column: only the csv data set has one; {key} has fixed labels")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    if key in TOY_GENERATORS and n_samples <= 0:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples}")
    if key in TEXT and n_labels is not None:
        raise ValueError(f"n_labels: {key} has no labels")


BUILT_IN = ("digits", "mnist5k", "ptb", *TOY_GENERATORS, *SKLEARN_TABLES)


def _check_root(key: str, name: str, root: Root, download: bool) -> None:
    """An explicit ``root`` must be used and must exist (unless we download into it)."""
    if root is None or key == "csv":  # csv: the reader checks the file and says what it needs
        return
    if key in BUILT_IN:
        raise ValueError(f"root: {name} is built in and reads no files; leave root unset")
    if not download and not Path(root).exists():
        raise DatasetNotFoundError(
            f"root {os.fspath(root)!r} does not exist; point it at the folder holding the "
            f"{name} files, or pass download=True to fetch them there"
        )


def filter_classes(
    targets: np.ndarray, classes: Sequence[int] | None, exclude_classes: Sequence[int]
) -> np.ndarray:
    """Indices of examples whose label is in ``classes`` (if given) and not excluded."""
    keep = np.ones(len(targets), dtype=bool)
    if classes is not None:
        keep &= np.isin(targets, np.asarray(list(classes), dtype=np.int64))
        if not keep.any():
            raise ValueError(
                f"classes={list(classes)} leaves no examples; labels present: "
                f"{np.unique(targets).tolist()}"
            )
    if exclude_classes:
        keep &= ~np.isin(targets, np.asarray(list(exclude_classes), dtype=np.int64))
        if not keep.any():
            raise ValueError(f"exclude_classes={list(exclude_classes)} leaves no examples")
    return np.flatnonzero(keep)


def balanced_subset(targets: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    """Positions of a class-balanced subset: ``n_labels // n_classes`` per class, drawn with
    ``seed`` (without replacement), returned in increasing order."""
    present = np.unique(targets)
    per_class = n_labels // len(present)
    if per_class == 0:
        raise ValueError(f"n_labels={n_labels} is less than the number of classes ({len(present)})")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in present:
        members = np.flatnonzero(targets == c)
        if len(members) < per_class:
            raise ValueError(
                f"n_labels={n_labels} needs {per_class} examples per class but class {c} "
                f"has only {len(members)}"
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def mask_labels(targets: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    """A copy of ``targets`` where only the :func:`balanced_subset` drawn with ``seed`` keeps
    its label and every other example has label ``-1`` (unlabelled)."""
    labelled = balanced_subset(targets, n_labels, seed)
    masked = np.full_like(targets, ArrayDataset.UNLABELLED)
    masked[labelled] = targets[labelled]
    return masked


def _select(
    targets: np.ndarray | None,
    n: int,
    *,
    classes: Sequence[int] | None,
    exclude_classes: Sequence[int],
    limit: int | None,
    n_labels: int | None,
    seed: int,
) -> np.ndarray:
    """Apply the class filters, ``limit`` and ``n_labels``; return the kept indices."""
    idx = np.arange(n)
    if targets is not None:
        idx = filter_classes(targets, classes, exclude_classes)
    if limit is not None:
        idx = idx[:limit]
    if n_labels is not None and targets is not None:
        idx = idx[balanced_subset(targets[idx], n_labels, seed)]
    return idx


def _holdout_arrays(key: str, name: str, split: str, root: Root, protocol: str,
                    exclude_classes: Sequence[int], classes: Sequence[int] | None, *,
                    seed: int, download: bool, n_samples: int) -> Arrays:
    """The ``split`` of ``protocol`` from all the labelled images of the data set."""
    if key in TABULAR or key in TOY_GENERATORS or key in TEXT or key == "image-folder":
        raise ValueError(f"holdout_protocol: {name} is not a labelled image data set")
    if classes is not None:
        raise ValueError("holdout_protocol: use exclude_classes for the held-out classes, "
                         "not classes")
    parts = [_load_arrays(key, name, s, root, limit=None, image_size=None, seed=seed,
                          download=download, n_samples=n_samples)
             for s in concatenation_order(key)]
    if any(t is None for _, t in parts):
        raise ValueError(f"holdout_protocol: {name} has no labels")
    images = np.concatenate([x for x, _ in parts])
    labels = np.concatenate([t for _, t in parts if t is not None])
    return holdout_split(images, labels, exclude_classes, split, protocol)


def _load_arrays(
    key: str,
    name: str,
    split: str,
    root: Root,
    *,
    limit: int | None,
    image_size: int | None,
    seed: int,
    download: bool,
    n_samples: int,
) -> Arrays:
    """The raw arrays of one split (image folders already cropped, resized and limited)."""
    if key in TOY_GENERATORS:
        return make_toy(key, n_samples, seed, split)
    if key == "image-folder":
        paths = sources.image_folder_paths(split, root, name)[:limit]
        size = image_size or DEFAULT_IMAGE_FOLDER_SIZE
        return load_image_files(paths, size, desc=f"loading {name}"), None
    if key == "digits":
        return sources.load_digits_split(split)
    if key == "mnist5k":
        return sources.load_mnist5k_split(split)
    if key == "idx":
        return sources.load_idx_split(split, root)
    loaders = {
        "mnist": sources.load_mnist_split,
        "fashion-mnist": sources.load_fashion_split,
        "cifar10": sources.load_cifar10_split,
        "svhn": sources.load_svhn_split,
    }
    return loaders[key](split, root, download)


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    image_size: int | None = None,
    exclude_classes: Sequence[int] = (),
    classes: Sequence[int] | None = None,
    n_labels: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    download: bool = False,
    n_samples: int = 20000,
    mask_unlabelled: bool = False,
    label_column: int | str | None = None,
    binarize: bool = False,
    holdout_protocol: str | None = None,
    max_length: int | None = None,
    vocab_size: int | None = None,
) -> ArrayDataset:
    """Load one split of a data set into memory.

    Args:
        name: one of :data:`DATASETS` (``"celeba"`` is an alias of ``"image-folder"``).
        split: ``"train"`` or ``"test"``; also ``"all"`` (digits, mnist5k, tables),
            ``"valid"`` and ``"train50k"`` (mnist), ``"extra"`` (svhn), ``"valid"`` (toy
            data), ``"train-fit"`` and ``"valid"`` (tables: 80 / 20 % of the train rows).
            Tables (``wine``, ``breast-cancer``, ``csv``) are split 70/30 per class by a
            fixed seed and standardised with the train split's mean and std (see
            :mod:`lebm.data.tabular`).
        root: folder holding the files (required for ``idx``; for ``image-folder`` the
            default is ``cache_dir()/<name>``). Otherwise looked up in root, root/<name>,
            ``cache_dir()/<name>``, then the data set's system location.
            For ``csv``: the path of the ``.csv`` file (required).
        image_size: resize images to ``image_size`` x ``image_size`` (Pillow, bilinear,
            anti-aliased); image folders default to 64 after a centre square crop.
        exclude_classes: labels to drop (anomaly detection hold-out).
        classes: keep only these labels.
        n_labels: keep a class-balanced subset of ``n_labels // n_classes`` per class,
            drawn with ``seed``.
        mask_unlabelled: with ``n_labels``, keep *every* selected example instead: the same
            balanced subset (same ``seed``, same examples) keeps its labels and the others
            get label ``-1`` (semi-supervised learning; see
            :meth:`ArrayDataset.labelled_indices`).
        limit: keep the first ``limit`` examples after the class filters (image folders:
            the first ``limit`` files, before they are read).
        seed: seed of the labelled subset and of the toy data's draws.
        download: fetch mnist / fashion-mnist / cifar10 / svhn into the cache if missing.
        n_samples: number of points drawn for the toy 2-D data sets.
        label_column: ``csv`` only: the label column, by name or integer index; default
            the last column.
        binarize: images only: every pixel to 0 or 255 (threshold at 128), i.e. exactly
            −1 or 1 in model space, for a Bernoulli likelihood.
        holdout_protocol: ``"zenati"`` or ``"zenati-disjoint"`` (:mod:`lebm.data.holdout`):
            the anomaly-detection split of all the data set's images, ``exclude_classes``
            held out; ``split`` is then ``"train"`` (80 % of the normal images) or
            ``"test"`` (the other normal images and every held-out one).
        max_length: text (``ptb``, ``text``): leave out the training sentences of more
            words (other splits are never cut).
        vocab_size: ``text``: keep the most frequent words (the rest become ``<unk>``).

    Returns:
        An :class:`ArrayDataset`: uint8 ``(N, C, H, W)`` images, float32 ``(N, 2)`` toy
        points, float32 ``(N, D)`` table rows or int64 ``(N, T)`` sentences (with ``.vocab``;
        :mod:`lebm.data.text`), with int64 labels (``None`` for image
        folders; ``-1`` for the unlabelled examples with ``mask_unlabelled``) and, for
        tables, the class names in ``.classes``.

    Raises:
        ValueError: unknown name, split or bad option value (the message names it).
        DatasetNotFoundError: the files are not on this machine (the message says how to
            get them).
    """
    key = _canonical(name)
    _check_options(
        key,
        split,
        image_size,
        n_labels,
        limit,
        n_samples,
        mask_unlabelled=mask_unlabelled,
        label_column=label_column,
    )
    _check_root(key, name, root, download)
    label_options = classes is not None or bool(exclude_classes) or n_labels is not None
    if key == "image-folder" and label_options:
        raise ValueError(
            f"classes / exclude_classes / n_labels: {name} has no labels; remove these options"
        )
    if (max_length is not None or vocab_size is not None) and key not in TEXT:
        raise ValueError(f"max_length / vocab_size: {name} is not a text data set")
    if key == "ptb" and vocab_size is not None:
        raise ValueError("vocab_size: ptb has its fixed 10k vocabulary; leave vocab_size unset")
    if key in TEXT:  # (Vocabulary.build checks vocab_size)
        ids, vocab = load_text_split(key, split, root, max_length=max_length,
                                     vocab_size=vocab_size)
        if limit is not None:
            ids = ids[:limit]
        return ArrayDataset(name, np.ascontiguousarray(ids), vocab=vocab)
    targets: np.ndarray | None
    class_names: list[str] | None = None
    if holdout_protocol is not None:
        data, targets = _holdout_arrays(key, name, split, root, holdout_protocol,
                                        exclude_classes, classes, seed=seed, download=download,
                                        n_samples=n_samples)
        exclude_classes = ()  # they define the split; the test set holds them
    elif key in TABULAR:
        data, targets, class_names = load_table(key, split, root, label_column)
    else:
        data, targets = _load_arrays(
            key,
            name,
            split,
            root,
            limit=limit,
            image_size=image_size,
            seed=seed,
            download=download,
            n_samples=n_samples,
        )
    idx = _select(
        targets,
        len(data),
        classes=classes,
        exclude_classes=exclude_classes,
        limit=limit,
        n_labels=None if mask_unlabelled else n_labels,
        seed=seed,
    )
    if len(idx) < len(data):
        data = data[idx]
        targets = None if targets is None else targets[idx]
    if mask_unlabelled and targets is not None and n_labels is not None:
        targets = mask_labels(targets, n_labels, seed)  # same draw as _select's
    if image_size is not None and data.ndim == 4:
        data = resize_images(data, image_size)
    if binarize:
        if data.dtype != np.uint8:
            raise ValueError(f"binarize: {name} is not image data")
        data = np.where(data >= 128, 255, 0).astype(np.uint8)
    return ArrayDataset(name, np.ascontiguousarray(data), targets, class_names)
