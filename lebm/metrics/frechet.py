"""The Fréchet distance between Gaussians fitted to two feature sets (the FID formula).

    d² = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2})

Computed in float64. ``tr (Σ1 Σ2)^{1/2}`` is taken as ``Σ √λ`` over the eigenvalues of
the symmetric PSD matrix ``Σ1^{1/2} Σ2 Σ1^{1/2}`` (similar to ``Σ1 Σ2``), which stays
real and needs no offset when a covariance is singular (dead ReLU features).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FeatureStats:
    """Mean and covariance of ``n`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def of(cls, features: torch.Tensor | np.ndarray) -> FeatureStats:
        f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor)
                       else features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"need a (n >= 2, dim) feature array, got shape {f.shape}")
        return cls(f.mean(0), np.cov(f, rowvar=False), f.shape[0])


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """Fréchet distance between the Gaussians ``N(a.mu, a.sigma)`` and ``N(b.mu, b.sigma)``."""
    mu1, mu2 = np.atleast_1d(a.mu), np.atleast_1d(b.mu)
    s1, s2 = np.atleast_2d(a.sigma), np.atleast_2d(b.sigma)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape} vs {mu2.shape}")
    diff = mu1 - mu2
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root1 @ s2 @ root1)
    tr_covmean = np.sqrt(np.clip(lam, 0, None)).sum()
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
