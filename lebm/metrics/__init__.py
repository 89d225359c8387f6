"""Evaluation metrics; importable without the rest of lebm's training code."""

from lebm.metrics.features import MNISTFeatures
from lebm.metrics.fid import FIDRecipe, fid, load_stats, save_stats, stats_for
from lebm.metrics.frechet import FeatureStats, frechet_distance
from lebm.metrics.inception import INCEPTION_NETWORK, InceptionFeatures
from lebm.metrics.likelihood import importance_log_likelihood, log_mean_exp
from lebm.metrics.scores import (
    accuracy,
    auprc,
    auroc,
    average_precision,
    cluster_purity,
    reconstruction_mse,
)

__all__ = ["INCEPTION_NETWORK", "FIDRecipe", "FeatureStats", "InceptionFeatures",
           "MNISTFeatures", "accuracy", "auprc", "auroc", "average_precision", "cluster_purity",
           "fid", "frechet_distance", "importance_log_likelihood", "load_stats", "log_mean_exp",
           "reconstruction_mse", "save_stats", "stats_for"]
