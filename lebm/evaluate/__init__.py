"""Evaluate a trained run (``Evaluator``, ``evaluate``: ``lebm eval``), and the marginal
likelihoods of any model (``log_likelihood``, ``prior_log_normalizer``)."""

from lebm.evaluate.evaluator import METRICS, EvalSettings, Evaluator, evaluate, format_table
from lebm.evaluate.marginal import log_likelihood, prior_log_normalizer

__all__ = ["METRICS", "EvalSettings", "Evaluator", "evaluate", "format_table", "log_likelihood",
           "prior_log_normalizer"]
