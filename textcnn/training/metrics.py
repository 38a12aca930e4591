"""Classification metrics in NumPy: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts; rows are true classes, columns predicted ones."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float64), where=b > 0)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray,
                          labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision/recall/F1/support, JSON-ready."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    tp = np.diag(cm).astype(np.float64)
    precision = _safe_div(tp, cm.sum(axis=0).astype(np.float64))
    recall = _safe_div(tp, cm.sum(axis=1).astype(np.float64))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    total = int(cm.sum())
    return {
        "rows": total,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(cm[i].sum())}
            for i, name in enumerate(labels)
        },
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
    }


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve of a binary task (the Mann-Whitney U statistic, ties halved);
    None when only one class is present."""
    y_true = np.asarray(y_true).astype(bool)
    pos, neg = int(y_true.sum()), int((~y_true).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = np.asarray(score)[order]
    # average ranks over ties, so equal scores count half
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[y_true].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def tune_thresholds(y_true: np.ndarray, probs: np.ndarray) -> list[float]:
    """Per class, the threshold on the grid with the best F1 on (y_true, probs); ties: the lowest."""
    out = []
    for c in range(probs.shape[1]):
        truth = y_true[:, c] > 0.5
        best, best_f1 = 0.5, -1.0
        for t in THRESHOLD_GRID:
            pred = probs[:, c] >= t
            tp = float((pred & truth).sum())
            f1 = 2 * tp / max(float(pred.sum() + truth.sum()), 1.0)
            if f1 > best_f1:
                best, best_f1 = float(t), f1
        out.append(best)
    return out


def multilabel_report(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str],
                      thresholds: Sequence[float]) -> dict[str, Any]:
    """Micro/macro-F1, subset accuracy and per-class precision/recall/F1 at the given thresholds."""
    truth = np.asarray(y_true) > 0.5                                   # (N, C)
    pred = probs >= np.asarray(thresholds, dtype=np.float32)[None, :]  # (N, C)
    tp = (pred & truth).sum(axis=0).astype(np.float64)
    n_pred, n_true = pred.sum(axis=0).astype(np.float64), truth.sum(axis=0).astype(np.float64)
    precision, recall = _safe_div(tp, n_pred), _safe_div(tp, n_true)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    micro = 2 * tp.sum() / max(n_pred.sum() + n_true.sum(), 1.0)
    return {
        "rows": int(len(truth)),
        "accuracy": float((pred == truth).all(axis=1).mean()) if len(truth) else 0.0,  # exact set
        "micro_f1": float(micro),
        "macro_f1": float(f1.mean()),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(n_true[i]), "threshold": float(thresholds[i])}
            for i, name in enumerate(labels)
        },
        "labels": list(labels),
        "thresholds": [float(t) for t in thresholds],
    }


def report_for(y_true: np.ndarray, probs: np.ndarray, labels: Sequence[str], multi_label: bool,
               thresholds: Sequence[float] | None = None) -> dict[str, Any]:
    """The report of a head, with `selection_metric`: what early stopping and checkpoints rank by
    (accuracy; micro-F1 for multi-label, whose thresholds are tuned on these rows unless given)."""
    if multi_label:
        if thresholds is None:
            thresholds = tune_thresholds(y_true, probs) if len(y_true) else [0.5] * len(labels)
        report = multilabel_report(y_true, probs, labels, thresholds)
        return {**report, "selection_metric": report["micro_f1"]}
    report = classification_report(y_true, probs.argmax(axis=1) if len(probs) else y_true, labels)
    report["micro_f1"] = report["accuracy"]     # single-label: every row has one prediction
    if len(labels) == 2:
        report["roc_auc"] = roc_auc(y_true == 1, probs[:, 1]) if len(probs) else None
    return {**report, "selection_metric": report["accuracy"]}
