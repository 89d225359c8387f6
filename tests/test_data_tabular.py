"""Tests of the tabular data sets (wine, breast-cancer, csv) and semi-supervised labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lebm.data import DATASETS, ArrayDataset, DatasetNotFoundError, load_dataset
from lebm.data.load import SPLITS, balanced_subset
from lebm.data.tabular import read_csv_table

# --------------------------------------------------------------------------- built-in tables

TABLES = {"wine": (178, 13, [59, 71, 48]), "breast-cancer": (569, 30, [212, 357])}


@pytest.mark.parametrize("name", list(TABLES))
def test_table_shapes_counts_and_split(name: str) -> None:
    n, d, counts = TABLES[name]
    assert name in DATASETS and SPLITS[name] == ("train", "test", "all", "train-fit", "valid")
    every, train, test = (load_dataset(name, s) for s in ("all", "train", "test"))
    for ds in (every, train, test):
        assert ds.data.dtype == torch.float32 and ds.sample_shape == (d,)
        assert ds.targets is not None and ds.targets.dtype == torch.int64
        assert ds.classes is not None and len(ds.classes) == len(counts)
        assert torch.equal(ds.batch(torch.arange(3)), ds.data[:3])  # vectors, unchanged
    assert every.targets is not None and train.targets is not None and test.targets is not None
    assert (len(every), len(train) + len(test)) == (n, n)
    assert torch.bincount(every.targets).tolist() == counts
    # stratified: round(0.7 n_c) of each class in train, so the proportions match closely
    assert torch.bincount(train.targets).tolist() == [round(0.7 * c) for c in counts]
    p_train = torch.bincount(train.targets) / len(train)
    p_test = torch.bincount(test.targets) / len(test)
    assert (p_train - p_test).abs().max().item() < 0.02
    assert len(set(train.targets[:30].tolist())) > 1  # shuffled, not sorted by class


@pytest.mark.parametrize("name", list(TABLES))
def test_table_standardised_with_train_statistics(name: str) -> None:
    train, test, every = (load_dataset(name, s) for s in ("train", "test", "all"))
    x = train.data.double()
    assert x.mean(0).abs().max().item() < 1e-5
    assert x.std(0, unbiased=False).sub(1).abs().max().item() < 1e-5
    assert test.data.double().mean(0).abs().max().item() > 0.05  # test keeps train's scaling
    # one affine map for every split: a train row appears unchanged in "all"
    rows = {r.numpy().tobytes() for r in every.data}
    assert all(r.numpy().tobytes() in rows for r in train.data[:20])
    assert all(r.numpy().tobytes() in rows for r in test.data[:20])


def test_table_split_independent_of_seed_and_partition() -> None:
    a, b = load_dataset("wine", "train", seed=0), load_dataset("wine", "train", seed=99)
    assert torch.equal(a.data, b.data) and torch.equal(a.targets, b.targets)
    train, test = load_dataset("wine", "train"), load_dataset("wine", "test", seed=3)
    every = load_dataset("wine", "all")
    rows = sorted(r.numpy().tobytes() for r in torch.cat([train.data, test.data]))
    assert rows == sorted(r.numpy().tobytes() for r in every.data)


def test_table_options() -> None:
    only = load_dataset("wine", classes=[0, 2], limit=20)
    assert only.targets is not None and set(only.targets.tolist()) <= {0, 2}
    assert len(only) == 20 and only.classes == ["class_0", "class_1", "class_2"]
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("wine", image_size=8)
    with pytest.raises(ValueError, match="root"):
        load_dataset("wine", root="/tmp")
    with pytest.raises(ValueError, match="label_column"):
        load_dataset("wine", label_column=0)
    with pytest.raises(ValueError, match="split"):
        load_dataset("wine", "train50k")


# --------------------------------------------------------------------------- CSV


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


IRIS_LIKE = """sepal_length,sepal_width,species
5.1,3.5,setosa
4.9,3.0,setosa
4.7,3.2,setosa
5.0,3.6,setosa
7.0,3.2,versicolor
6.4,3.2,versicolor
6.9,3.1,versicolor
5.5,2.3,versicolor
6.3,3.3,virginica
5.8,2.7,virginica
7.1,3.0,virginica
6.5,3.0,virginica
"""


def test_csv_string_labels_last_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "iris.csv", IRIS_LIKE)
    every = load_dataset("csv", "all", root=path)
    assert every.sample_shape == (2,) and len(every) == 12
    assert every.classes == ["setosa", "versicolor", "virginica"]
    assert every.targets is not None and every.targets.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    train, test = load_dataset("csv", root=path), load_dataset("csv", "test", root=path)
    assert train.targets is not None and test.targets is not None
    assert torch.bincount(train.targets).tolist() == [3, 3, 3]  # round(0.7 * 4) per class
    assert torch.bincount(test.targets).tolist() == [1, 1, 1]
    raw = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(0, 1))
    table = read_csv_table(path)
    assert np.array_equal(table.features, raw) and table.feature_names == [
        "sepal_length",
        "sepal_width",
    ]
    assert train.data.double().mean(0).abs().max().item() < 1e-5


def test_csv_int_labels_sorted_numerically_no_header(tmp_path: Path) -> None:
    rows = [f"{i},{i * 0.5},{label}" for i, label in enumerate([10, 2, 10, 2, 7, 7, 2, 10])]
    path = write_csv(tmp_path / "nums.csv", "\n".join(rows) + "\n")
    ds = load_dataset("csv", "all", root=path)
    assert len(ds) == 8  # the first row is data, not a header
    assert ds.classes == ["2", "7", "10"]
    assert ds.targets is not None and ds.targets.tolist() == [2, 0, 2, 0, 1, 1, 0, 2]


@pytest.mark.parametrize("label_column", ["species", 0, -3, "0"])
def test_csv_label_column_by_name_and_index(tmp_path: Path, label_column: int | str) -> None:
    text = "species,a,b\n" + "".join(
        f"{'yes' if i % 2 else 'no'},{i},{i * i % 7}\n" for i in range(10)
    )
    path = write_csv(tmp_path / "t.csv", text)
    ds = load_dataset("csv", "all", root=path, label_column=label_column)
    assert ds.sample_shape == (2,) and ds.classes == ["no", "yes"]
    assert ds.targets is not None and ds.targets.tolist() == [i % 2 for i in range(10)]
    with pytest.raises(ValueError, match="label_column='colour'.*species, a, b"):
        load_dataset("csv", root=path, label_column="colour")
    with pytest.raises(ValueError, match="out of range"):
        load_dataset("csv", root=path, label_column=3)


def test_csv_non_numeric_feature_names_the_column(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", "x,colour,y\n1,red,a\n2,blue,b\n3,red,a\n")
    with pytest.raises(ValueError, match="column 'colour' is not numeric.*line 2"):
        load_dataset("csv", root=path)


@pytest.mark.parametrize("cell", ["", "NA", "?", "nan"])
def test_csv_missing_value_names_row_and_column(tmp_path: Path, cell: str) -> None:
    path = write_csv(tmp_path / "gap.csv", f"x,y,label\n1,2,a\n3,4,b\n5,{cell},a\n6,7,b\n")
    with pytest.raises(ValueError, match="missing value in column 'y' at line 4"):
        load_dataset("csv", root=path)
    path = write_csv(tmp_path / "nolabel.csv", "x,y,label\n1,2,a\n3,4,\n5,6,b\n")
    with pytest.raises(ValueError, match="missing label in column 'label' at line 3"):
        load_dataset("csv", root=path)


def test_csv_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root"):
        load_dataset("csv")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("csv", root=tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="not a folder"):
        load_dataset("csv", root=tmp_path)
    ragged = write_csv(tmp_path / "ragged.csv", "a,b,c\n1,2,x\n3,x\n")
    with pytest.raises(ValueError, match="line 3 has 2 fields"):
        load_dataset("csv", root=ragged)
    empty = write_csv(tmp_path / "empty.csv", "\n")
    with pytest.raises(ValueError, match="empty"):
        load_dataset("csv", root=empty)


# --------------------------------------------------------------------------- semi-supervised


@pytest.mark.parametrize(("name", "n_labels"), [("wine", 30), ("digits", 100)])
def test_mask_unlabelled_keeps_the_balanced_subset(name: str, n_labels: int) -> None:
    full = load_dataset(name)
    masked = load_dataset(name, n_labels=n_labels, mask_unlabelled=True, seed=4)
    subset = load_dataset(name, n_labels=n_labels, seed=4)
    assert full.targets is not None and masked.targets is not None
    assert torch.equal(masked.data, full.data)  # every example kept, same order
    labelled = masked.labelled_indices()
    expected = balanced_subset(full.targets.numpy(), n_labels, seed=4)
    assert labelled.tolist() == expected.tolist()
    assert torch.equal(masked.data[labelled], subset.data)  # the same examples in both modes
    assert torch.equal(masked.targets[labelled], full.targets[labelled])
    n_classes = len(full.targets.unique())
    assert torch.bincount(masked.targets[labelled]).tolist() == [n_labels // n_classes] * n_classes
    others = torch.ones(len(masked), dtype=torch.bool)
    others[labelled] = False
    assert (masked.targets[others] == -1).all()
    assert int(others.sum()) == len(full) - len(labelled)
    assert f"{len(labelled)} labelled" in repr(masked)
    again = load_dataset(name, n_labels=n_labels, mask_unlabelled=True, seed=5)
    assert not torch.equal(again.labelled_indices(), labelled)


def test_mask_unlabelled_with_filters_and_subset() -> None:
    masked = load_dataset("digits", classes=[1, 2], limit=80, n_labels=10, mask_unlabelled=True)
    assert len(masked) == 80 and masked.targets is not None
    assert set(masked.targets.tolist()) == {-1, 1, 2}
    part = masked.subset(torch.arange(40))
    assert part.labelled_indices().tolist() == [
        i for i in masked.labelled_indices().tolist() if i < 40
    ]
    labels = masked.labels(torch.arange(len(masked)))
    assert labels is not None and int((labels >= 0).sum()) == 10


def test_mask_unlabelled_needs_n_labels() -> None:
    with pytest.raises(ValueError, match="mask_unlabelled=True needs n_labels"):
        load_dataset("wine", mask_unlabelled=True)


def test_array_dataset_classes_and_labelled_indices() -> None:
    ds = ArrayDataset("t", torch.zeros(4, 2), torch.tensor([0, -1, 1, -1]), classes=["a", "b"])
    assert ds.labelled_indices().tolist() == [0, 2] and ds.classes == ["a", "b"]
    assert ds.subset(torch.tensor([3, 2])).classes == ["a", "b"]
    assert ArrayDataset("t", torch.zeros(2, 2)).labelled_indices().tolist() == []
    assert ArrayDataset("t", torch.zeros(2, 2), torch.tensor([0, 1])).classes is None
    with pytest.raises(ValueError, match="class names"):
        ArrayDataset("t", torch.zeros(2, 2), torch.tensor([0, 2]), classes=["a", "b"])
    with pytest.raises(ValueError, match=">= 0, or -1"):
        ArrayDataset("t", torch.zeros(2, 2), torch.tensor([0, -2]))


@pytest.mark.parametrize("name", ["wine", "breast-cancer"])
def test_valid_and_train_fit_split_the_train_rows_by_class(name):
    """valid = 20 % of each class's train rows, train-fit the rest: disjoint, together the
    train split, scaled like it (so settings can be chosen without the test rows)."""
    from lebm.data import load_dataset

    parts = {s: load_dataset(name, s) for s in ("train", "train-fit", "valid")}
    rows = {s: {tuple(r) for r in d.batch(torch.arange(len(d))).tolist()}
            for s, d in parts.items()}
    assert rows["train-fit"].isdisjoint(rows["valid"])
    assert rows["train-fit"] | rows["valid"] == rows["train"]
    for c in torch.unique(parts["train"].targets):
        n_c = int((parts["train"].targets == c).sum())
        assert int((parts["valid"].targets == c).sum()) == round(0.2 * n_c)
