import pytest

from benchmarks.accuracy import Reference, Row, mean_row, missing, references, table
from tests.conftest import DATASETS

pytestmark = pytest.mark.unit


def test_the_table_marks_met_targets_and_shows_both_epoch_counts():
    ref = Reference(fasttext=0.767, tfidf=0.795, target=0.80)
    text = table([Row("a", 0.801, 0.79, ref, 90.4, 5, 3), Row("b", 0.79, 0.78, ref, 12.0, 6, None)])
    lines = text.splitlines()
    assert lines[2] == "| a | 0.801 | 0.790 | >= 0.800 | yes | 0.767 | 0.795 | 90 s | 5 (3) |"
    assert lines[3] == "| b | 0.790 | 0.780 | >= 0.800 | NO | 0.767 | 0.795 | 12 s | 6 (-) |"


def test_seeds_give_their_mean_judged_against_the_target_and_each_seed_in_the_last_column():
    ref = Reference(fasttext=0.847, tfidf=0.865, target=0.87)
    seeds = mean_row([Row("t", 0.858, 0.85, ref, 80.0, 5, 2), Row("t", 0.878, 0.88, ref, 100.0, 6, 4),
                      Row("t", 0.873, 0.86, ref, 90.0, 6, 5)])
    assert seeds.accuracy == pytest.approx(0.8697, abs=1e-4) and not seeds.met      # 0.86967 < 0.87
    one = mean_row([Row("s", 0.99, 0.97, ref, 10.0, 3, 1)])
    assert one.runs == [] and one.accuracy == 0.99
    lines = table([seeds, one]).splitlines()
    assert lines[0].endswith("| epochs (refit) | per seed: accuracy, epochs (refit) |")
    assert lines[2] == ("| t | 0.8697 | 0.8633 | >= 0.870 | NO | 0.847 | 0.865 | 90 s | - | "
                        "0.858, 5 (2); 0.878, 6 (4); 0.873, 6 (5) |")
    assert lines[3] == "| s | 0.990 | 0.970 | >= 0.870 | yes | 0.847 | 0.865 | 10 s | 3 (1) | 0.990, 3 (1) |"


def test_references_reads_every_set_of_the_shared_table():
    refs = references(str(DATASETS))
    assert set(refs) == {"rt_snippets", "zh_reviews", "thucnews_titles", "sms_spam", "bbc_news"}
    assert refs["rt_snippets"] == Reference(0.767, 0.795, 0.80)


def test_missing_names_the_first_file_the_benchmark_lacks(tmp_path):
    assert missing(str(tmp_path)) == "REFERENCE.md"
    assert missing(str(DATASETS)) == "rt_snippets/train.parquet"      # the tests' subsets are not the full sets
    assert missing(str(DATASETS), ("sms_spam",)) is None
