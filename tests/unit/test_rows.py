import numpy as np
import pyarrow as pa
import pytest

from textcnn.config import TokenizerConfig
from textcnn.core.rows import REASONS, RowLimits, check_rows
from textcnn.core.text import VocabBuilder

pytestmark = pytest.mark.unit


@pytest.fixture
def tokenizer():
    builder = VocabBuilder(TokenizerConfig(max_length=8, split="words"))
    builder.update(["a good film", "a bad film", "好 电影"])
    return builder.build()


LIMITS = RowLimits(max_text_chars=50, max_id_chars=10, allow_unknown_only=False)


def test_each_reason_is_found_and_good_rows_are_tokenized(tokenizer):
    rows = [  # (id, text, duplicate, expected reason)
        ("1", "a good film", False, None),
        (None, "a good film", False, "id_null"),
        (" ", "a good film", False, "id_empty"),
        ("x" * 11, "a good film", False, "id_too_long"),
        ("5", "a good film", True, "id_duplicate"),
        ("6", None, False, "text_null"),
        ("7", b"\xff\xfe bad", False, "text_invalid_utf8"),
        ("8", "good\x00film", False, "text_control_chars"),
        ("9", "film " * 20, False, "text_too_long"),
        ("10", " \t\n", False, "text_empty"),
        ("11", "zzz qqq", False, "text_unknown_only"),
        ("12", "好电影", False, None),
        ("13", "good\x7ffilm", False, "text_control_chars"),       # DEL
        ("14", "good\x85film", False, "text_control_chars"),       # a C1 control (NEL)
    ]
    ids = pa.array([r[0] for r in rows])
    texts = pa.array([r[1].encode() if isinstance(r[1], str) else r[1] for r in rows], pa.binary())
    checked = check_rows(ids, texts, np.array([r[2] for r in rows]), tokenizer, LIMITS)
    assert list(checked.reasons) == [r[3] for r in rows]
    assert set(REASONS) - {"row_group_unreadable"} == {r[3] for r in rows} - {None}   # that one: a file's fault
    assert (checked.tokens[[0, 11]] > 1).sum() == 6 and (checked.tokens[1:11] == 0).all()
    assert (checked.tokens[12:] == 0).all()
    assert checked.texts[11] == "好电影"


def test_the_first_failed_check_names_the_row_and_options_relax_the_rules(tokenizer):
    ids, texts = pa.array([None, 7]), pa.array([None, "zzz"])
    checked = check_rows(ids, texts, np.zeros(2, bool), tokenizer, LIMITS)
    assert list(checked.reasons) == ["id_null", "text_unknown_only"]     # integer ids need no string checks
    relaxed = RowLimits(50, 10, allow_unknown_only=True)
    assert list(check_rows(ids, texts, np.zeros(2, bool), tokenizer, relaxed).reasons) == ["id_null", None]
