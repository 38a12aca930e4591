"""Drift between two scoring runs: the top-class probability histogram and the predicted-label mix.

Each is compared with the population stability index (PSI), the usual score-monitoring measure:
below 0.1 little has moved, 0.1-0.25 a noticeable shift, above 0.25 a large one. A run's drift is the
larger of the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIST_BINS = 20     # equal-width bins of the top-class probability over [0, 1]
_EPS = 1e-4        # share given to an empty bin, so PSI stays finite


@dataclass(frozen=True)
class Distributions:
    """A run's predicted-label counts and top-class probability histogram (HIST_BINS bins)."""
    labels: dict[str, int]
    top_prob_histogram: list[int]


@dataclass(frozen=True)
class Drift:
    """A run's drift against the previous run: the PSI of each distribution, and the larger."""
    previous_run: str
    psi_top_prob: float
    psi_labels: float
    drift: float


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


def compare(current: Distributions, previous: Distributions, previous_run: str) -> Drift:
    """Drift of current's distributions against previous's (the run previous_run)."""
    labels = sorted(set(current.labels) | set(previous.labels))
    by_label = psi([previous.labels.get(k, 0) for k in labels], [current.labels.get(k, 0) for k in labels])
    by_prob = psi(previous.top_prob_histogram, current.top_prob_histogram)
    return Drift(previous_run, round(by_prob, 6), round(by_label, 6), round(max(by_prob, by_label), 6))
