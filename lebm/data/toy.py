"""Toy 2-D densities used to check that a prior or sampler captures multimodal structure.

Each generator returns ``(points, labels)``: ``float32`` ``(n, 2)`` and ``int64`` ``(n,)``
(the mixture component / arm / ring each point came from). Points are drawn from a numpy
``Generator``; :func:`toy_rng` derives it from ``(seed, split)`` so train and test are
different, reproducible streams.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

TOY_SPLITS = {"train": 0, "test": 1, "valid": 2}


def toy_rng(seed: int, split: str) -> np.random.Generator:
    """Random stream for one (seed, split) pair; different splits never share draws."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), TOY_SPLITS[split], 0x2D]))


def eight_gaussians(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mixture of 8 equal-weight Gaussians.

    Centres ``4 (cos kπ/4, sin kπ/4)`` for k = 0..7, isotropic noise of std 0.5, and the
    result divided by 1.414 (the usual normalisation): centres lie on a circle of radius
    ``4 / 1.414 ≈ 2.83`` and each component has std ``0.5 / 1.414 ≈ 0.354``.
    """
    labels = rng.integers(0, 8, size=n)
    angles = labels * (np.pi / 4)
    centres = 4.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    points = (centres + 0.5 * rng.standard_normal((n, 2))) / 1.414
    return points.astype(np.float32), labels.astype(np.int64)


EIGHT_GAUSSIANS_CENTRES = (
    4.0 * np.stack([np.cos(np.arange(8) * np.pi / 4), np.sin(np.arange(8) * np.pi / 4)], 1) / 1.414
)


def pinwheel(
    n: int,
    rng: np.random.Generator,
    *,
    arms: int = 5,
    radial_std: float = 0.3,
    tangential_std: float = 0.1,
    rate: float = 0.25,
    scale: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pinwheel with ``arms`` spiral arms.

    A point of arm ``a`` starts at ``(r, t)`` with ``r = 1 + N(0, radial_std²)`` and
    ``t = N(0, tangential_std²)``, and is rotated by ``a·2π/arms + rate·exp(r)`` (the
    further out, the more it bends), then multiplied by ``scale``.
    """
    labels = rng.integers(0, arms, size=n)
    radial = 1.0 + radial_std * rng.standard_normal(n)
    tangential = tangential_std * rng.standard_normal(n)
    angle = labels * (2 * np.pi / arms) + rate * np.exp(radial)
    cos, sin = np.cos(angle), np.sin(angle)
    points = np.stack([radial * cos - tangential * sin, radial * sin + tangential * cos], axis=1)
    return (scale * points).astype(np.float32), labels.astype(np.int64)


def rings(
    n: int,
    rng: np.random.Generator,
    *,
    radii: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0),
    noise: float = 0.08,
) -> tuple[np.ndarray, np.ndarray]:
    """Concentric rings; a ring is chosen with probability proportional to its radius
    (i.e. its circumference), the angle uniformly, plus isotropic noise of std ``noise``."""
    r = np.asarray(radii, dtype=np.float64)
    labels = rng.choice(len(r), size=n, p=r / r.sum())
    angle = rng.uniform(0.0, 2 * np.pi, size=n)
    points = r[labels, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    points += noise * rng.standard_normal((n, 2))
    return points.astype(np.float32), labels.astype(np.int64)


TOY_GENERATORS: dict[str, Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]] = {
    "8gaussians": eight_gaussians,
    "pinwheel": pinwheel,
    "rings": rings,
}


def make_toy(name: str, n: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` points of toy density ``name`` for ``(seed, split)``."""
    return TOY_GENERATORS[name](n, toy_rng(seed, split))
