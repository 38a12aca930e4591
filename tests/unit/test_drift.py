import numpy as np
import pytest

from textcnn.scoring import drift

pytestmark = pytest.mark.unit


def test_psi_is_zero_for_the_same_distribution_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    base = drift.histogram(rng.beta(5, 2, 10_000))
    same = drift.histogram(rng.beta(5, 2, 10_000))
    moved = drift.histogram(rng.beta(2, 5, 10_000))
    assert sum(base) == 10_000 and len(base) == drift.HIST_BINS
    assert drift.psi(base, same) < 0.02 < 0.25 < drift.psi(base, moved)


def test_compare_takes_the_larger_of_label_and_probability_shift():
    hist = [0] * 10 + [50] * 10
    previous = drift.Distributions({"pos": 500, "neg": 500}, hist)
    current = drift.Distributions({"pos": 900, "neg": 90, "new": 10}, hist)
    result = drift.compare(current, previous, "run_date=2026-12-06")
    assert result.psi_top_prob == 0.0 and result.psi_labels > 0.3
    assert result.drift == result.psi_labels and result.previous_run == "run_date=2026-12-06"
