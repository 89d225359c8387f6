"""Scalar metrics on arrays: reconstruction error, anomaly AUPRC / AUROC, accuracy."""

from __future__ import annotations

import numpy as np
import torch


def _np(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def reconstruction_mse(x: torch.Tensor, recon: torch.Tensor) -> dict[str, float]:
    """Mean squared error per pixel, for images in [-1, 1] (``mse``) and in [0, 1] (``mse_01``).

    The [0, 1] value is the [-1, 1] one divided by 4 (pixels scaled by ½).
    """
    if x.shape != recon.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(recon.shape)}")
    mse = float((x.float() - recon.float()).pow(2).mean())
    return {"mse": mse, "mse_01": mse / 4}


def _check_binary(scores: np.ndarray, positive: np.ndarray) -> None:
    if scores.shape != positive.shape or scores.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {scores.shape} "
                         f"and {positive.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("anomaly scores contain NaN or inf")
    n_pos = int(positive.sum())
    if n_pos == 0 or n_pos == len(positive):
        raise ValueError("need both normal and anomalous examples to compute AUPRC / AUROC")


def auprc(scores: torch.Tensor | np.ndarray, is_anomaly: torch.Tensor | np.ndarray) -> float:
    """Area under the precision–recall curve by the trapezoid rule over the curve's points
    (``sklearn.metrics.auc(recall, precision)`` of ``precision_recall_curve``), anomalies
    positive, higher score = more anomalous: the AUPRC of the anomaly-detection papers
    (Zenati et al. 2018 and after). Chance level is about the anomaly fraction."""
    from sklearn.metrics import auc, precision_recall_curve

    s, y = _np(scores).astype(np.float64), _np(is_anomaly).astype(bool)
    _check_binary(s, y)
    precision, recall, _ = precision_recall_curve(y, s)
    return float(auc(recall, precision))


def average_precision(scores: torch.Tensor | np.ndarray,
                      is_anomaly: torch.Tensor | np.ndarray) -> float:
    """Average precision (the step-wise area under the precision–recall curve), anomalies
    positive; what ``auprc`` of lebm 0.1 reported."""
    from sklearn.metrics import average_precision_score

    s, y = _np(scores).astype(np.float64), _np(is_anomaly).astype(bool)
    _check_binary(s, y)
    return float(average_precision_score(y, s))


def auroc(scores: torch.Tensor | np.ndarray, is_anomaly: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve, anomalies positive; 0.5 is chance."""
    from sklearn.metrics import roc_auc_score

    s, y = _np(scores).astype(np.float64), _np(is_anomaly).astype(bool)
    _check_binary(s, y)
    return float(roc_auc_score(y, s))


def accuracy(predicted: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> float:
    """Fraction of ``predicted == labels`` (class indices, or logits/probabilities ``(n, K)``)."""
    p, y = _np(predicted), _np(labels)
    if p.ndim == 2:
        p = p.argmax(1)
    if p.shape != y.shape or p.ndim != 1 or len(p) == 0:
        raise ValueError(f"need (n,) predictions and labels, got {p.shape} and {y.shape}")
    return float((p == y).mean())


def cluster_purity(pred: torch.Tensor, labels: torch.Tensor, n_symbols: int) -> dict[str, float]:
    """How well predicted symbols match classes, for symbols learned without labels.

    ``purity``: fraction of examples whose symbol is their class's most frequent symbol.
    Purity cannot see two classes merged into one symbol, so also ``distinct_majority_symbols``
    (how many different symbols the classes' majorities are; equal to ``classes`` when every
    class has its own), ``symbols_used`` and ``classes``.
    """
    pred, labels = torch.as_tensor(pred).long().cpu(), torch.as_tensor(labels).long().cpu()
    if pred.shape != labels.shape or pred.ndim != 1 or len(pred) == 0:
        raise ValueError(f"pred and labels must be 1-D of equal, non-zero length, got "
                         f"{tuple(pred.shape)} and {tuple(labels.shape)}")
    if int(labels.min()) < 0 or int(pred.min()) < 0 or int(pred.max()) >= n_symbols:
        raise ValueError("labels must be >= 0 and predictions in [0, n_symbols)")
    counts = torch.zeros(int(labels.max()) + 1, n_symbols)
    counts.index_put_((labels, pred), torch.ones(len(labels)), accumulate=True)
    present = counts[counts.sum(1) > 0]
    return {"purity": float(present.max(1).values.sum() / len(labels)),
            "distinct_majority_symbols": int(present.argmax(1).unique().numel()),
            "symbols_used": int((counts.sum(0) > 0).sum()), "classes": int(len(present))}
