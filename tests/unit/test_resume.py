"""The run record: a run started again under its name resumes only when it builds the same model."""

import json

import pytest

from textcnn.config import ConfigError, ModelConfig, TokenizerConfig
from textcnn.core.text import VocabBuilder
from textcnn.training import resume

pytestmark = pytest.mark.unit


def _tokenizer(texts, split="words"):
    builder = VocabBuilder(TokenizerConfig(max_length=16, split=split))
    builder.update(texts)
    return builder.build()


def _fingerprint(texts=("a good film", "a dull film"), split="words", **model):
    tokenizer = _tokenizer(list(texts), split)
    config = ModelConfig(vocab_size=len(tokenizer), num_classes=2, **model)
    return resume.fingerprint(tokenizer, ["neg", "pos"], config)


def _checkpointed(run):
    (run / resume.RAY_SNAPSHOT).write_text("{}")      # what Ray Train leaves once it has checkpoints


def test_a_fresh_run_is_recorded_and_the_same_run_resumes(tmp_path):
    run = tmp_path / "run"
    assert resume.check_or_record(str(run), _fingerprint()) is False
    assert json.loads((run / resume.RECORD_FILE).read_text()) == _fingerprint()
    _checkpointed(run)
    assert resume.check_or_record(str(run), _fingerprint()) is True


def test_resuming_with_another_model_names_each_difference(tmp_path):
    run = tmp_path / "run"
    resume.check_or_record(str(run), _fingerprint(num_filters=100))
    _checkpointed(run)
    with pytest.raises(ConfigError) as e:
        resume.check_or_record(str(run), _fingerprint(texts=("other words",), num_filters=64))
    message = str(e.value)
    assert f"run {run} was started with a different model" in message and "--run-name" in message
    assert "model.num_filters: 100 -> 64" in message and "vocabulary: " in message
    assert "model.vocab_size: 6 -> 4" in message     # <pad>, <unk> and the words
    assert json.loads((run / resume.RECORD_FILE).read_text())["model"]["num_filters"] == 100   # kept


def test_a_changed_split_is_a_different_vocabulary(tmp_path):
    before, now = _fingerprint(split="words"), _fingerprint(split="chars")
    assert [d.split(":")[0] for d in resume.differences(before, now)] == ["vocabulary", "model.vocab_size"]


def test_a_run_that_never_checkpointed_takes_the_new_settings(tmp_path):
    run = tmp_path / "run"
    resume.check_or_record(str(run), _fingerprint(num_filters=100))   # then failed before its first epoch
    assert resume.check_or_record(str(run), _fingerprint(num_filters=64)) is False
    assert json.loads((run / resume.RECORD_FILE).read_text())["model"]["num_filters"] == 64


def test_a_run_checkpointed_before_records_existed_resumes_and_is_recorded(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    _checkpointed(run)
    assert resume.check_or_record(str(run), _fingerprint()) is True
    assert (run / resume.RECORD_FILE).exists()


def test_a_model_setting_resolved_differently_is_named():
    """E.g. a CJK run checkpointed before the CJK preset existed, started again after it."""
    before, now = _fingerprint(ngram_idf=False), _fingerprint(ngram_idf=True)
    assert resume.differences(before, now) == ["model.ngram_idf: False -> True"]
