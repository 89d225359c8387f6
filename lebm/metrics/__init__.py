"""Evaluation metrics; importable without the rest of lebm's training code."""

from lebm.metrics.features import MNISTFeatures
from lebm.metrics.frechet import FeatureStats, frechet_distance

__all__ = ["FeatureStats", "MNISTFeatures", "frechet_distance"]
