"""The anomaly-detection split of Zenati et al. (2018), used by every MNIST anomaly table of
the latent-EBM line (MEG, LEBM Table 4, the CVPR'23 / ICCV'23 joint EBMs, DAMC).

Facts of the published loader (``houssamzenati/Efficient-GAN-Anomaly-Detection``,
``data/mnist.py``), re-implemented here:

* all images of the data set, concatenated (for MNIST in the order of that loader's
  ``mnist.npz``: ``x_train``, ``x_test``, ``x_valid`` — the 50k training, 10k test and 10k
  validation images of the classic ``mnist.pkl.gz`` split, ``MNIST_ORDER`` here);
* normal = every class but the held-out one(s); one module-level
  ``numpy.random.RandomState(42)`` permutes the normal images; the first 80 %
  (``int(0.8·n)``) train, the rest plus **every** held-out image test; the test set is
  shuffled by a second draw of the same generator;
* every call of the loader draws both permutations, and the published scripts call it for
  the training set and then for the test set in one process: the test set's normal images
  are the last 20 % of the generator's *third* permutation, not of the first, so about
  80 % of them were trained on.

``zenati`` reproduces that draw order, leak included (the published baselines were measured
on it); ``zenati-disjoint`` takes the test normals from the training permutation (the
honest split: no test image was trained on).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PROTOCOLS = ("zenati", "zenati-disjoint")
SEED = 42
TRAIN_FRACTION = 0.8
# MNIST's splits in the published loader's order: x_train (50k), x_test, x_valid
MNIST_ORDER = ("train50k", "test", "valid")


def concatenation_order(key: str) -> tuple[str, ...]:
    """The splits whose concatenation is "all images" for data set ``key``."""
    return MNIST_ORDER if key == "mnist" else ("train", "test")


def holdout_split(images: np.ndarray, labels: np.ndarray, anomalies: Sequence[int],
                  split: str, protocol: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``train`` (normal images only) or ``test`` (normals and every anomaly) set of
    ``protocol`` from all images and their labels, in the published loader's order."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown hold-out protocol {protocol!r}; choose one of "
                         f"{', '.join(PROTOCOLS)}")
    if split not in ("train", "test"):
        raise ValueError(f"a hold-out protocol has a train and a test split, not {split!r}")
    if not anomalies:
        raise ValueError(f"holdout_protocol={protocol} needs the held-out classes "
                         "(exclude_classes)")
    is_anomaly = np.isin(labels, np.asarray(list(anomalies), dtype=labels.dtype))
    if not is_anomaly.any() or is_anomaly.all():
        raise ValueError(f"held-out classes {list(anomalies)}: need both normal and held-out "
                         "images")
    normal_x, normal_y = images[~is_anomaly], labels[~is_anomaly]
    n = len(normal_y)
    cut = int(n * TRAIN_FRACTION)
    n_test = n - cut + int(is_anomaly.sum())
    rng = np.random.RandomState(SEED)
    train_perm = rng.permutation(n)  # the training call's permutation of the normals
    if split == "train":
        return normal_x[train_perm[:cut]], normal_y[train_perm[:cut]]
    train_call_shuffle = rng.permutation(n_test)  # the training call's (unused) test shuffle
    if protocol == "zenati":  # the test call draws its own permutation: the published leak
        test_perm, shuffle = rng.permutation(n), rng.permutation(n_test)
    else:
        test_perm, shuffle = train_perm, train_call_shuffle
    test_x = np.concatenate([normal_x[test_perm[cut:]], images[is_anomaly]])
    test_y = np.concatenate([normal_y[test_perm[cut:]], labels[is_anomaly]])
    return test_x[shuffle], test_y[shuffle]
