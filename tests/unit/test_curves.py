from collections import Counter

import numpy as np
import pytest

from benchmarks import curves
from benchmarks.curves import FULL, Point, curve_table, parse_sizes, subsample, summarise

pytestmark = pytest.mark.unit

# 1,000 rows: 70% ham, 25% spam, 5% other, interleaved
LABELS = [("ham" if i % 20 < 14 else "spam" if i % 20 < 19 else "other") for i in range(1000)]


def test_sizes_parse_counts_and_full_and_refuse_the_rest():
    assert parse_sizes("500, 1000,FULL") == [500, 1000, FULL]
    for bad in ("", "0", "-5", "500,abc", "500,500", "1.5"):
        with pytest.raises(ValueError):
            parse_sizes(bad)
    assert curves.sizes_for([500, 1000, 2000, FULL], 1000) == ([500, FULL], [1000, 2000])


@pytest.mark.parametrize("size", [20, 57, 100, 333, 999])
def test_a_subsample_has_the_size_and_each_class_keeps_its_share_within_a_row_or_two(size):
    for seed in range(5):
        index = subsample(LABELS, size, seed)
        assert len(index) == size == len(set(index.tolist())) and list(index) == sorted(index)
        counts = Counter(LABELS[i] for i in index)
        for name, share in (("ham", 0.70), ("spam", 0.25), ("other", 0.05)):
            assert abs(counts[name] - share * size) <= 1.5, (name, counts)


def test_a_subsample_follows_its_seed_and_a_seeds_sizes_nest():
    assert np.array_equal(subsample(LABELS, 100, 0), subsample(LABELS, 100, 0))
    assert not np.array_equal(subsample(LABELS, 100, 0), subsample(LABELS, 100, 1))
    small, large = set(subsample(LABELS, 100, 2).tolist()), set(subsample(LABELS, 400, 2).tolist())
    assert small < large
    order = curves.stratified_order(LABELS, 2)
    assert sorted(order.tolist()) == list(range(1000))


def test_full_is_every_row_and_a_size_beyond_the_split_is_refused():
    assert subsample(LABELS, FULL, 5).tolist() == list(range(1000))
    assert len(subsample(LABELS, 1000, 5)) == 1000
    with pytest.raises(ValueError, match="more than the 1000"):
        subsample(LABELS, 1001, 0)


def test_spread_is_the_mean_and_its_standard_error():
    s = curves.spread([0.80, 0.82, 0.84])
    assert s.mean == pytest.approx(0.82) and s.se == pytest.approx(0.02 / 3 ** 0.5)
    assert curves.spread([0.9]).se == 0.0


def _points(name, size, rows, cnn, lr, ft):
    return [Point(name, size, rows, seed, c, t, f, 60.0) for seed, (c, t, f) in enumerate(zip(cnn, lr, ft))]


def test_the_table_gives_means_with_standard_errors_and_counts_a_tie_as_not_yet():
    points = (_points("rt", 500, 500, [0.70, 0.72], [0.74, 0.74], [0.66, 0.68])        # behind: no
              + _points("rt", 1000, 1000, [0.76, 0.78], [0.765, 0.765], [0.70, 0.70])  # +0.5 ± 1.0: tie
              + _points("rt", FULL, 11477, [0.81, 0.80], [0.795, 0.795], [None, None]))  # +1.0 ± 0.5: yes
    rows = summarise(points)
    assert [(r.size, r.verdict) for r in rows] == [(500, "no"), (1000, "tie"), (FULL, "yes")]
    lines = curve_table(rows).splitlines()
    assert lines[0].startswith("| set | size | rows | seeds | CNN | TF-IDF + LR | fastText | CNN - LR (points) |")
    assert lines[2] == ("| rt | 500 | 500 | 2 | 0.710 ± 0.010 | 0.740 ± 0.000 | 0.670 ± 0.010 | -3.0 ± 1.0 | no "
                        "| 60 s |")
    assert lines[3].split(" | ")[7:9] == ["+0.5 ± 1.0", "tie"]
    assert lines[4] == ("| rt | full | 11477 | 2 | 0.805 ± 0.005 | 0.795 ± 0.000 | - | +1.0 ± 0.5 | yes | 60 s |")
