import pytest

from tests.conftest import DATASETS
from textcnn.accuracy import Reference, Row, references, table

pytestmark = pytest.mark.unit


def test_the_table_marks_met_targets_and_shows_both_epoch_counts():
    ref = Reference(fasttext=0.767, tfidf=0.795, target=0.80)
    text = table([Row("a", 0.801, 0.79, ref, 90.4, 5, 3), Row("b", 0.79, 0.78, ref, 12.0, 6, None)])
    lines = text.splitlines()
    assert lines[2] == "| a | 0.801 | 0.790 | >= 0.800 | yes | 0.767 | 0.795 | 90 s | 5 (3) |"
    assert lines[3] == "| b | 0.790 | 0.780 | >= 0.800 | NO | 0.767 | 0.795 | 12 s | 6 (-) |"


def test_references_reads_every_set_of_the_shared_table():
    refs = references(str(DATASETS))
    assert set(refs) == {"rt_snippets", "zh_reviews", "thucnews_titles", "sms_spam", "bbc_news"}
    assert refs["rt_snippets"] == Reference(0.767, 0.795, 0.80)
