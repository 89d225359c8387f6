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
from lebm.metrics.text_lm import (
    LMConfig,
    LSTMLanguageModel,
    cached_language_model,
    forward_perplexity,
    perplexity,
    reverse_perplexity,
    train_language_model,
)

__all__ = [
    "FIDRecipe", "FeatureStats", "INCEPTION_NETWORK", "InceptionFeatures", "LMConfig",
    "LSTMLanguageModel", "MNISTFeatures", "accuracy", "auprc", "auroc", "average_precision",
    "cached_language_model", "cluster_purity", "fid", "forward_perplexity", "frechet_distance",
    "importance_log_likelihood", "load_stats", "log_mean_exp", "perplexity",
    "reconstruction_mse", "reverse_perplexity", "save_stats", "stats_for",
    "train_language_model",
]
