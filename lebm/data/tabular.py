"""Tabular data sets: scikit-learn's wine and breast-cancer tables, and any CSV file.

A table is ``N`` rows of ``D`` numeric features plus one class label per row. Every table
is split and scaled by the same rule, so every run and every method sees the same data:

- **Split**: stratified, fixed. In each class, ``round(0.7 * n_c)`` rows drawn with the
  fixed :data:`~lebm.data.sources.SPLIT_SEED` (never the run's ``seed``) form ``"train"``,
  the rest ``"test"``; both parts come in one fixed shuffled order. ``"all"`` is every
  row in file order. For choosing settings without the test rows, ``"valid"`` is
  ``round(0.2 * n_c)`` of each class's *train* rows (the same stratified rule, applied to
  the train part) and ``"train-fit"`` the other train rows.
- **Scaling**: each feature is standardised, ``(x - mean) / std``, with the mean and
  (population) std of the *train* rows, in every split; so train has mean 0 and std 1
  exactly, test and all only approximately. A constant feature is only centred.

Features come back ``float32`` ``(N, D)``, labels ``int64`` ``(N,)`` in ``0..K-1``, and
the class names (``classes[k]`` names label ``k``).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dataset import DatasetNotFoundError
from .sources import stratified_split

TRAIN_FRACTION = 0.7
VALID_FRACTION = 0.2  # of the train rows, for "valid" (the rest is "train-fit")
TABULAR_SPLITS = ("train", "test", "all", "train-fit", "valid")
SKLEARN_TABLES = ("wine", "breast-cancer")
TABULAR = (*SKLEARN_TABLES, "csv")

# Cells read as "missing" in a CSV file (compared after stripping, case-insensitively).
MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})

LabelColumn = int | str | None


@dataclass(frozen=True)
class Table:
    """A whole table before splitting: ``float64`` features, labels ``0..K-1`` and names."""

    features: np.ndarray
    labels: np.ndarray
    classes: list[str]
    feature_names: list[str]


def load_sklearn_table(name: str) -> Table:
    """scikit-learn's built-in ``wine`` (178 x 13, 3 classes) or ``breast-cancer``
    (569 x 30, 2 classes: malignant, benign); no download."""
    from sklearn import datasets

    loader = {"wine": datasets.load_wine, "breast-cancer": datasets.load_breast_cancer}[name]
    bunch = loader()
    return Table(
        features=np.asarray(bunch.data, dtype=np.float64),
        labels=np.asarray(bunch.target, dtype=np.int64),
        classes=[str(c) for c in bunch.target_names],
        feature_names=[str(f) for f in bunch.feature_names],
    )


def split_table(table: Table, split: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``split`` (``"train"``, ``"test"``, ``"all"``, ``"train-fit"`` or
    ``"valid"``), standardised with
    the train rows' statistics (see the module docstring)."""
    train, test = stratified_split(table.labels, TRAIN_FRACTION)
    rows = {"train": train, "test": test, "all": np.arange(len(table.labels))}.get(split)
    if rows is None:  # train-fit / valid: the same rule inside the train rows
        fit, valid = stratified_split(table.labels[train], 1 - VALID_FRACTION)
        rows = train[fit] if split == "train-fit" else train[valid]
    if len(rows) == 0:
        raise ValueError(
            f"{source}: the {split} split is empty ({len(table.labels)} rows, "
            f"{TRAIN_FRACTION:.0%} of each class go to train); use more rows or split='train'"
        )
    mean = table.features[train].mean(axis=0)
    std = table.features[train].std(axis=0)
    std[std == 0] = 1.0
    features = ((table.features[rows] - mean) / std).astype(np.float32)
    return features, table.labels[rows].copy()


# --------------------------------------------------------------------------- CSV


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_missing(cell: str) -> bool:
    return cell.lower() in MISSING


def _has_header(first: list[str], body: list[list[str]]) -> bool:
    """The first row is a header if one of its cells is text where the rest of that column
    is numbers (``sepal_length`` over ``5.1, 4.9, ...``); failing that, if it has no
    number at all."""
    for j, cell in enumerate(first):
        if _is_missing(cell) or _is_number(cell):
            continue
        column = [row[j] for row in body if not _is_missing(row[j])]
        if column and all(_is_number(c) for c in column):
            return True
    return not any(_is_number(c) for c in first)


def _label_index(label_column: LabelColumn, names: list[str], source: str) -> int:
    """Position of the label column: last by default, else a name or an integer index."""
    width = len(names)
    if label_column is None:
        return width - 1
    if isinstance(label_column, str):
        if label_column in names:
            return names.index(label_column)
        try:
            label_column = int(label_column)
        except ValueError:
            raise ValueError(
                f"label_column={label_column!r} is not a column of {source}; columns: "
                f"{', '.join(names)}"
            ) from None
    if isinstance(label_column, bool) or not -width <= label_column < width:
        raise ValueError(
            f"label_column={label_column!r} is out of range: {source} has {width} columns"
        )
    return label_column % width


def _feature_column(cells: list[str], lines: list[int], name: str, source: str) -> np.ndarray:
    """Parse one feature column to ``float64``; a missing, non-numeric or infinite cell
    raises ValueError naming the column and the line."""
    try:
        values = np.asarray(cells, dtype=np.float64)
        if np.isfinite(values).all():
            return values
    except ValueError:
        pass
    for cell, line in zip(cells, lines, strict=True):  # find the first bad cell
        if _is_missing(cell):
            raise ValueError(
                f"{source}: missing value in column {name!r} at line {line}; fill it in or "
                "drop the row"
            )
        if not _is_number(cell):
            raise ValueError(
                f"{source}: column {name!r} is not numeric (line {line}: {cell!r}); features "
                "must be numbers: encode the column as numbers or drop it"
            )
        if not math.isfinite(float(cell)):
            raise ValueError(f"{source}: column {name!r} has {cell!r} at line {line}")
    raise AssertionError("unreachable")  # pragma: no cover


def _encode_labels(
    cells: list[str], lines: list[int], name: str, source: str
) -> tuple[np.ndarray, list[str]]:
    """Map the distinct label values to ``0..K-1`` in sorted order: numerically if every
    value is an integer (``"2" < "10"``), else as strings."""
    for cell, line in zip(cells, lines, strict=True):
        if _is_missing(cell):
            raise ValueError(
                f"{source}: missing label in column {name!r} at line {line}; fill it in or "
                "drop the row"
            )
    try:
        numbers = [int(c) for c in cells]
    except ValueError:
        names = sorted(set(cells))
        code = {name: k for k, name in enumerate(names)}
        return np.array([code[c] for c in cells], dtype=np.int64), names
    distinct, labels = np.unique(np.asarray(numbers, dtype=np.int64), return_inverse=True)
    return labels.astype(np.int64).reshape(-1), [str(v) for v in distinct.tolist()]


def read_csv_table(path: str | os.PathLike[str], label_column: LabelColumn = None) -> Table:
    """Read a comma-separated file of numeric features and one label column.

    The first row is a header when it holds a column name over a numeric column (or holds
    no number at all); otherwise the columns are named ``"0"``, ``"1"``, ... Blank lines are
    skipped; cells are stripped of spaces.

    Args:
        path: the ``.csv`` file.
        label_column: the label column, by name or integer index (negative counts from the
            end); default the last column. Labels may be strings or integers.

    Raises:
        DatasetNotFoundError: no file at ``path``.
        ValueError: a row of the wrong length, a missing value (``""``, ``NA``, ``NaN``,
            ``?``, ...), a non-numeric or infinite feature, or an unknown label column; the
            message names the column and the line.
    """
    file = Path(path).expanduser()
    source = str(file)
    if file.is_dir():
        raise ValueError(f"root: the csv data set needs a .csv file, not a folder: {file}")
    if not file.is_file():
        raise DatasetNotFoundError(f"CSV file {file} does not exist; pass root=PATH/TO/FILE.csv")
    rows: list[list[str]] = []
    lines: list[int] = []
    with open(file, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        for row in reader:
            cells = [c.strip() for c in row]
            if any(cells):
                rows.append(cells)
                lines.append(reader.line_num)
    if not rows:
        raise ValueError(f"{source}: the CSV file is empty")
    width = len(rows[0])
    if width < 2:
        raise ValueError(f"{source}: need at least one feature column and a label column")
    for row, line in zip(rows, lines, strict=True):
        if len(row) != width:
            raise ValueError(
                f"{source}: line {line} has {len(row)} fields but the first row has {width}"
            )
    if _has_header(rows[0], rows[1:]):
        names, rows, lines = rows[0], rows[1:], lines[1:]
    else:
        names = [str(j) for j in range(width)]
    if not rows:
        raise ValueError(f"{source}: the CSV file has a header but no data rows")
    label_j = _label_index(label_column, names, source)
    columns = list(zip(*rows, strict=True))
    feature_js = [j for j in range(width) if j != label_j]
    features = np.stack(
        [_feature_column(list(columns[j]), lines, names[j], source) for j in feature_js], axis=1
    )
    labels, classes = _encode_labels(list(columns[label_j]), lines, names[label_j], source)
    return Table(features, labels, classes, [names[j] for j in feature_js])


def load_table(
    key: str, split: str, root: str | os.PathLike[str] | None, label_column: LabelColumn
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(features, labels, class names)`` of one split of a tabular data set."""
    if key == "csv":
        if root is None:
            raise ValueError("root: the csv data set needs root=PATH/TO/FILE.csv")
        table = read_csv_table(root, label_column)
        source = str(Path(root).expanduser())
    else:
        table = load_sklearn_table(key)
        source = key
    features, labels = split_table(table, split, source)
    return features, labels, table.classes
