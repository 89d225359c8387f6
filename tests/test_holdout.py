"""The anomaly-detection split of Zenati et al. (2018) and its disjoint variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lebm.data import load_dataset
from lebm.data.holdout import holdout_split


def _fake(n: int = 200, classes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Images whose single pixel is their index, so every image is identifiable."""
    images = np.arange(n, dtype=np.int64).reshape(n, 1, 1, 1)
    labels = np.arange(n) % classes
    return images, labels


@pytest.mark.parametrize("protocol", ["zenati", "zenati-disjoint"])
def test_split_sizes_and_where_the_anomalies_go(protocol):
    images, labels = _fake()
    train_x, train_y = holdout_split(images, labels, [3], "train", protocol)
    test_x, test_y = holdout_split(images, labels, [3], "test", protocol)
    n_normal = int((labels != 3).sum())  # 160
    assert len(train_y) == int(0.8 * n_normal) == 128
    assert len(test_y) == n_normal - 128 + 40  # the other normals and every anomaly
    assert not (train_y == 3).any()
    assert sorted(test_x[test_y == 3].ravel()) == sorted(images[labels == 3].ravel())
    assert abs(float((test_y == 3).mean()) - 40 / 72) < 1e-9


def test_the_draw_order_of_the_published_loader():
    """One RandomState(42) stream: the training call draws the normals' permutation and a
    test shuffle; the test call draws both again. The faithful test normals are the tail of
    the third draw, the disjoint ones the tail of the first."""
    images, labels = _fake()
    normal = images[labels != 3].ravel()
    rng = np.random.RandomState(42)
    first = rng.permutation(160)
    rng.permutation(72)  # the training call's test shuffle
    third = rng.permutation(160)
    fourth = rng.permutation(72)
    train_x, _ = holdout_split(images, labels, [3], "train", "zenati")
    assert list(train_x.ravel()) == list(normal[first[:128]])
    test_x, _ = holdout_split(images, labels, [3], "test", "zenati")
    expected = np.concatenate([normal[third[128:]], images[labels == 3].ravel()])[fourth]
    assert list(test_x.ravel()) == list(expected)


def test_the_faithful_split_leaks_and_the_disjoint_one_does_not():
    images, labels = _fake(n=1000)
    train = set(holdout_split(images, labels, [3], "train", "zenati")[0].ravel())
    for protocol, low, high in (("zenati", 0.7, 0.9), ("zenati-disjoint", 0.0, 0.0)):
        x, y = holdout_split(images, labels, [3], "test", protocol)
        overlap = np.mean([v in train for v in x[y != 3].ravel()])
        assert low <= overlap <= high, (protocol, overlap)  # about 80 % when faithful


def test_bad_options_are_refused():
    images, labels = _fake()
    with pytest.raises(ValueError, match="needs the held-out classes"):
        holdout_split(images, labels, [], "train", "zenati")
    with pytest.raises(ValueError, match="unknown hold-out protocol"):
        holdout_split(images, labels, [3], "train", "mine")
    with pytest.raises(ValueError, match="need both normal and held-out"):
        holdout_split(images, labels, [7], "train", "zenati")
    with pytest.raises(ValueError, match="not a labelled image data set"):
        load_dataset("wine", "train", exclude_classes=[1], holdout_protocol="zenati")


def test_the_protocol_on_a_second_data_set_end_to_end(tmp_path, tiny_overrides):
    """sklearn digits with 3 held out: the same option, the same split rules; a run trained
    on it is scored on the protocol's test set with the papers' figures."""
    from lebm.cli import main

    train = load_dataset("digits", "train", exclude_classes=[3], holdout_protocol="zenati")
    test = load_dataset("digits", "test", exclude_classes=[3], holdout_protocol="zenati")
    all_digits = torch.cat([load_dataset("digits", s).targets for s in ("train", "test")])
    n_normal = int((all_digits != 3).sum())
    assert len(train) == int(0.8 * n_normal) and not (train.targets == 3).any()
    assert int((test.targets == 3).sum()) == int((all_digits == 3).sum())
    assert 0.3 < float((test.targets == 3).float().mean()) < 0.4
    run = tmp_path / "r"
    args = ["train", "digits", "--run-dir", str(run), "--max-steps", "2"]
    for o in [*tiny_overrides, "data.limit=none", "data.exclude_classes=3",
              "data.holdout_protocol=zenati-disjoint"]:
        args += ["--set", o]
    assert main(args) == 0
    from lebm.evaluate import EvalSettings, evaluate

    r = evaluate(run, ["auprc"], EvalSettings(progress=False), "cpu")["metrics"]["auprc"]
    assert r["recipe"]["protocol"] == "zenati-disjoint" and r["recipe"]["n"] == len(test)
    assert abs(r["anomaly_fraction"] - float((test.targets == 3).float().mean())) < 1e-9
    assert 0 <= r["auprc"] <= 1 and 0 <= r["average_precision"] <= 1
    out = tmp_path / "s.csv"
    assert main(["score", str(run), "--data", "digits", "--protocol", "zenati-disjoint",
                 "--chains", "2", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 1 + len(test)
