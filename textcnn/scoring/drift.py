"""Drift between two scoring runs: the top-class probability histogram and the predicted-label mix.

Each is compared with the population stability index (PSI), the usual score-monitoring measure:
below 0.1 little has moved, 0.1-0.25 a noticeable shift, above 0.25 a large one. A run's drift is the
larger of the two.
"""

from __future__ import annotations

import numpy as np

HIST_BINS = 20     # equal-width bins of the top-class probability over [0, 1]
_EPS = 1e-4        # share given to an empty bin, so PSI stays finite


def histogram(top_prob: np.ndarray) -> list[int]:
    counts, _ = np.histogram(top_prob, bins=HIST_BINS, range=(0.0, 1.0))
    return counts.tolist()


def psi(expected: list[float], actual: list[float]) -> float:
    """Population stability index of two count vectors over the same bins."""
    e, a = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    if e.sum() == 0 or a.sum() == 0:
        return 0.0
    e, a = np.clip(e / e.sum(), _EPS, None), np.clip(a / a.sum(), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def compare(current: dict, previous: dict) -> dict:
    """Drift of current's distributions (a manifest's "distributions") against previous's."""
    labels = sorted(set(current["labels"]) | set(previous["labels"]))
    by_label = psi([previous["labels"].get(k, 0) for k in labels], [current["labels"].get(k, 0) for k in labels])
    by_prob = psi(previous["top_prob_histogram"], current["top_prob_histogram"])
    return {"psi_top_prob": round(by_prob, 6), "psi_labels": round(by_label, 6),
            "drift": round(max(by_prob, by_label), 6)}
