"""Fréchet distance against closed forms; the MNIST feature network against its accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lebm.metrics import FeatureStats, MNISTFeatures, frechet_distance


def test_frechet_distance_closed_form_gaussians():
    # 1-D: d² = (μ1 − μ2)² + (σ1 − σ2)²
    a = FeatureStats(np.array([1.0]), np.array([[4.0]]), 10)
    b = FeatureStats(np.array([-2.0]), np.array([[1.0]]), 10)
    assert frechet_distance(a, b) == pytest.approx(9.0 + 1.0)
    # commuting (diagonal) covariances: Σ (σ1ᵢ − σ2ᵢ)² + ‖Δμ‖²
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    a = FeatureStats(np.zeros(3), np.diag(s1), 10)
    b = FeatureStats(np.array([1.0, 0.0, 2.0]), np.diag(s2), 10)
    want = 5.0 + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(a, b) == pytest.approx(want)
    # a general SPD pair: symmetric in its arguments, zero on itself
    rng = np.random.default_rng(0)
    m = rng.normal(size=(4, 4))
    c = m @ m.T + np.eye(4)
    a, b = FeatureStats(np.ones(4), c, 10), FeatureStats(np.zeros(4), np.eye(4), 10)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)


def test_feature_stats_from_samples():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(20000, 2, generator=g) * torch.tensor([1.0, 3.0]) + torch.tensor([2.0, 0.0])
    s = FeatureStats.of(f)
    np.testing.assert_allclose(s.mu, [2.0, 0.0], atol=0.05)
    np.testing.assert_allclose(s.sigma, np.diag([1.0, 9.0]), atol=0.2)
    with pytest.raises(ValueError, match="feature"):
        FeatureStats.of(torch.zeros(1, 3))


def test_mnist_features_classify_test_digits():
    from lebm.data import load_dataset

    test = load_dataset("mnist", "test", limit=500)
    x = test.batch(torch.arange(len(test)))
    net = MNISTFeatures()
    acc = (net.logits(x).argmax(1) == test.targets).float().mean().item()
    assert acc > 0.97
    assert net.extract(x, batch_size=128).shape == (500, 128)
    with pytest.raises(ValueError, match="28, 28"):
        net(torch.zeros(2, 3, 32, 32))


def test_scores_against_hand_computed_values():
    from lebm.metrics.scores import (
        accuracy,
        auprc,
        auroc,
        average_precision,
        reconstruction_mse,
    )

    # ranking [0.9 (a), 0.8 (n), 0.7 (a), 0.1 (n)]: precision at the two anomalies 1 and 2/3
    s = np.array([0.1, 0.9, 0.8, 0.7])
    y = np.array([0, 1, 0, 1])
    assert average_precision(s, y) == pytest.approx((1 + 2 / 3) / 2)
    # the papers' AUPRC: trapezoids through the curve's points (recall, precision) =
    # (0, 1), (½, 1), (½, ½), (1, ⅔): ½·1 + 0 + ½·(½ + ⅔)/2 = 19/24
    assert auprc(s, y) == pytest.approx(19 / 24)
    assert auroc(s, y) == pytest.approx(0.75)  # 3 of the 4 (anomaly, normal) pairs ordered
    assert auprc(torch.tensor(-s), torch.tensor(1 - y)) == pytest.approx(auprc(-s, 1 - y))
    with pytest.raises(ValueError, match="both normal and anomalous"):
        auprc(s, np.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        auroc(np.array([0.0, np.nan]), np.array([0, 1]))
    assert accuracy(torch.tensor([1, 2, 3]), torch.tensor([1, 0, 3])) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    x = torch.zeros(2, 1, 2, 2)
    r = reconstruction_mse(x, torch.full_like(x, 0.5))
    assert r == {"mse": pytest.approx(0.25), "mse_01": pytest.approx(0.0625)}


def test_cluster_purity_sees_merged_classes():
    from lebm.metrics import cluster_purity

    y = torch.tensor([0, 0, 1, 1, 2, 2])
    own = cluster_purity(torch.tensor([2, 2, 0, 0, 1, 1]), y, 3)  # a relabelling: perfect
    assert own == {"purity": 1.0, "distinct_majority_symbols": 3, "symbols_used": 3,
                   "classes": 3}
    merged = cluster_purity(torch.tensor([1, 1, 1, 1, 2, 0]), y, 3)  # 0 and 1 share symbol 1
    assert merged["purity"] == pytest.approx(5 / 6)
    assert merged["distinct_majority_symbols"] == 2 and merged["symbols_used"] == 3
    with pytest.raises(ValueError, match="n_symbols"):
        cluster_purity(torch.tensor([3, 0]), torch.tensor([0, 1]), 3)
