"""The automatic choices follow the corpus, and an explicit value always wins (textcnn.training.presets)."""

import dataclasses

import pytest

from textcnn.config import ModelConfig, TokenizerConfig, TrainConfig
from textcnn.core.text import VocabBuilder
from textcnn.training import presets
from textcnn.training.presets import Survey
from textcnn.training.refit import epochs_to_refit

pytestmark = pytest.mark.unit


def _survey(cjk_share: float, classes: int = 2) -> Survey:
    split = "chars" if cjk_share > presets.CJK_MAJORITY else "words"
    return Survey(builder=VocabBuilder(TokenizerConfig(split=split)), labels=[str(i) for i in range(classes)],
                  multi_label=False, class_counts=[10] * classes, rows=10 * classes, length_p95=37,
                  cjk_share=cjk_share)


def _config(**model) -> TrainConfig:
    return TrainConfig(train="t", output="o", model=ModelConfig(**model))


@pytest.mark.parametrize("cjk_share, split, kernels, idf", [(0.9, "chars", (1, 2, 3), True),
                                                           (0.1, "words", (3, 4, 5), False)])
def test_left_automatic_the_choices_follow_the_corpus(cjk_share, split, kernels, idf):
    resolved = presets.resolve(_config(), _survey(cjk_share, classes=10))
    assert resolved.tokenizer.split == split and resolved.tokenizer.max_length == 40   # p95 37 -> 40
    assert resolved.model.kernel_sizes == kernels and resolved.model.ngram_idf is idf
    assert resolved.model.ngram_buckets == 2**18                                      # 10 classes


def test_explicit_values_win_over_the_corpus():
    config = TrainConfig(train="t", output="o", tokenizer=TokenizerConfig(max_length=24),
                         model=ModelConfig(kernel_sizes=(2, 3), ngram_buckets=4096, ngram_idf=False))
    resolved = presets.resolve(config, _survey(0.9))
    assert resolved.model.kernel_sizes == (2, 3) and resolved.model.ngram_buckets == 4096
    assert resolved.model.ngram_idf is False and resolved.tokenizer.max_length == 24
    assert presets.resolve(_config(ngram_idf=True), _survey(0.1)).model.ngram_idf is True



@pytest.mark.parametrize("rows, epochs", [(100, 30), (450, 30), (1000, 15), (1800, 9), (2500, 6), (100_000, 6)])
def test_small_training_splits_get_more_epochs(rows, epochs):
    assert presets.auto_epochs(rows) == epochs
    survey = Survey(**{**vars(_survey(0.1)), "rows": rows})
    assert presets.resolve(_config(), survey).epochs == epochs
    assert presets.resolve(TrainConfig(train="t", output="o", epochs=4), survey).epochs == 4    # explicit


@pytest.mark.parametrize("rows, val, refit, asked, schedule", [
    (4000, None, True, "auto", "full"),        # ~444 rows held out: too few to pick an epoch count
    (4600, None, True, "auto", "picked"),      # ~511 held out
    (4000, "v.parquet", True, "auto", "picked"),    # a given validation set: no refit at all
    (4000, None, False, "auto", "picked"),
    (100_000, None, True, "full", "full"),     # explicit values win
    (400, None, True, "picked", "picked"),
])
def test_the_refit_trains_the_whole_schedule_when_too_few_rows_are_held_out(rows, val, refit, asked, schedule):
    config = TrainConfig(train="t", output="o", val=val, refit=refit, refit_schedule=asked)
    assert presets.refit_schedule(config, rows) == schedule


def test_the_refit_epoch_count_follows_the_schedule():
    config = TrainConfig(train="t", output="o", epochs=30, refit_schedule="full")
    assert epochs_to_refit(config, picked=2) == 30
    assert epochs_to_refit(dataclasses.replace(config, refit_schedule="picked"), picked=2) == 2


@pytest.mark.parametrize("cjk_share, idf, rows, asked, start", [
    (0.9, None, 450, "auto", "logistic"), (0.9, None, 1499, "auto", "logistic"),     # CJK: IDF on
    (0.9, None, 1500, "auto", "naive_bayes"), (0.9, None, 100_000, "auto", "naive_bayes"),
    (0.1, None, 450, "auto", "naive_bayes"),          # words: no IDF, the naive Bayes start did better
    (0.1, True, 450, "auto", "logistic"),             # IDF asked for: the TF-IDF features LR fits well
    (0.9, None, 450, "naive_bayes", "naive_bayes"), (0.1, None, 100_000, "logistic", "logistic"),
    (0.9, None, 450, "zeros", "zeros"),
])
def test_small_idf_weighted_splits_start_the_ngram_branch_from_logistic_regression(cjk_share, idf, rows, asked,
                                                                                   start):
    survey = Survey(**{**vars(_survey(cjk_share)), "rows": rows})
    config = TrainConfig(train="t", output="o", ngram_init=asked, model=ModelConfig(ngram_idf=idf))
    assert presets.resolve(config, survey).ngram_init == start
