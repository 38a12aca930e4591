"""The automatic choices of a training run, made from what the survey of the training split found.

Left at 0 / empty, these follow the corpus (an explicit value always wins):
- max_length: the 95th percentile of tokens per text, rounded up to a multiple of 8, in [16, 512];
  20-word snippets get 40 tokens, 500-word articles 512.
- split: "chars" when most word tokens of the first batch are CJK characters (every character a
  token, whitespace runs one " " token: textcnn.core.text), "words" otherwise.
- kernel_sizes: (1, 2, 3) when most tokens are CJK characters (a Chinese word is 1-3 characters),
  (3, 4, 5) otherwise (English phrases), as in Kim (2014).
- ngram_idf (None): on for CJK corpora, whose n-grams then count by IDF as in TF-IDF; off otherwise.
- ngram_buckets (-1): 2**21 for two classes, halved until buckets x classes <= 2**22
  (config.auto_ngram_buckets).
- epochs (0): 6, or more on small training splits: enough epochs for ROW_PASSES rows seen in all,
  at most MAX_EPOCHS (500 rows: 30 epochs, 2,000 rows: 8, 2,500 rows and up: 6). Six epochs of a
  500-row split are 24 steps of two workers: too few for the convolutions to learn anything.
- refit_schedule ("auto"): "full" when the validation split carved from train has fewer than
  MIN_PICK_ROWS rows, "picked" otherwise. On 50-450 validation rows the standard error of an accuracy
  (3-7 points) dwarfs the gap between epochs, so the picked count is a coin toss (a refit of 1 epoch on
  500 rows scored 10 points below one of the whole schedule); the refit then trains every epoch of the
  schedule, as TF-IDF + LR trains to convergence without a validation split. The selection run still
  validates, and its best epoch's report is the model's validation report.
- ngram_init ("auto"): "logistic" when the branch weighs its n-grams by IDF (CJK corpora, or
  --ngram-idf) on fewer than LOGISTIC_MAX_ROWS training rows, "naive_bayes" otherwise. Over TF-IDF
  features the logistic regression is the peer's own model, and starting from it took zh_reviews'
  500-row gap to TF-IDF + LR from -1.7 to -0.3 points; over the unweighted n-grams of English sets
  it is a weaker start than naive Bayes (rt_snippets 500: -1.2 against -0.9, bbc_news 500: -2.0
  against -0.9; docs/learning-curves.md). Larger splits were not measured with it.
The resolved values are saved with the model (config.json), so a run can be read back exactly.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from textcnn.config import TokenizerConfig, TrainConfig, auto_ngram_buckets
from textcnn.core.text import VocabBuilder

log = logging.getLogger(__name__)

MIN_LENGTH, MAX_LENGTH = 16, 512
CJK_KERNELS, WORD_KERNELS = (1, 2, 3), (3, 4, 5)
CJK_MAJORITY = 0.5     # above this share of CJK characters, a corpus is CJK
MIN_EPOCHS, MAX_EPOCHS, ROW_PASSES = 6, 30, 15_000
MIN_PICK_ROWS = 500    # fewer validation rows than this cannot pick an epoch count (refit_schedule)
LOGISTIC_MAX_ROWS = 1_500   # below this many training rows an IDF-weighted branch starts from logistic regression


@dataclass
class Survey:
    """What one streaming pass over the training split learns: token counts, classes, lengths."""
    builder: VocabBuilder
    labels: list[str]
    multi_label: bool
    class_counts: list[int]       # rows per class (multi-label: rows carrying the class)
    rows: int
    length_p95: int               # tokens per text, 95th percentile
    cjk_share: float              # share of the first batch's word tokens that are single CJK characters


def split_mode(tokenizer: TokenizerConfig, cjk_share: float) -> TokenizerConfig:
    """tokenizer with its split resolved: an explicit mode wins; "auto" is chars for CJK corpora."""
    if tokenizer.split != "auto":
        return tokenizer
    return dataclasses.replace(tokenizer, split="chars" if cjk_share > CJK_MAJORITY else "words")


def auto_max_length(length_p95: int) -> int:
    return min(MAX_LENGTH, max(MIN_LENGTH, -(-length_p95 // 8) * 8))


def auto_epochs(rows: int) -> int:
    """Epochs for a training split of rows: ROW_PASSES rows seen in all, within [MIN_EPOCHS, MAX_EPOCHS]."""
    return min(MAX_EPOCHS, max(MIN_EPOCHS, -(-ROW_PASSES // max(rows, 1))))


def refit_schedule(config: TrainConfig, train_rows: int) -> str:
    """config.refit_schedule resolved: "full" when the validation split carved from train_rows' split
    has fewer than MIN_PICK_ROWS rows (a given validation set is never refit on: "picked")."""
    if config.refit_schedule != "auto":
        return config.refit_schedule
    val_rows = train_rows * config.val_fraction / (1 - config.val_fraction)
    return "full" if config.refits and val_rows < MIN_PICK_ROWS else "picked"


def ngram_init(config: TrainConfig, train_rows: int, idf: bool) -> str:
    """config.ngram_init resolved: "auto" is "logistic" for a branch weighing its n-grams by IDF on
    fewer than LOGISTIC_MAX_ROWS rows, "naive_bayes" otherwise."""
    if config.ngram_init != "auto":
        return config.ngram_init
    return "logistic" if idf and train_rows < LOGISTIC_MAX_ROWS else "naive_bayes"


def schedule(config: TrainConfig, survey: Survey) -> TrainConfig:
    """config with its epochs and refit schedule resolved from the training split's row count."""
    epochs = config.epochs or auto_epochs(survey.rows)
    return dataclasses.replace(config, epochs=epochs, refit_schedule=refit_schedule(config, survey.rows))


def resolve(config: TrainConfig, survey: Survey) -> TrainConfig:
    """config with its automatic fields filled in from survey."""
    config = schedule(config, survey)
    tokenizer, model = dataclasses.replace(config.tokenizer, split=survey.builder.config.split), config.model
    if not tokenizer.max_length:
        tokenizer = dataclasses.replace(tokenizer, max_length=auto_max_length(survey.length_p95))
    cjk = survey.cjk_share > CJK_MAJORITY
    if not model.kernel_sizes:
        model = dataclasses.replace(model, kernel_sizes=CJK_KERNELS if cjk else WORD_KERNELS)
    if model.ngram_buckets < 0:
        model = dataclasses.replace(model, ngram_buckets=auto_ngram_buckets(len(survey.labels)))
    if model.ngram_idf is None:
        model = dataclasses.replace(model, ngram_idf=cjk)
    config = dataclasses.replace(config, ngram_init=ngram_init(config, survey.rows, bool(model.ngram_idf)))
    log.info("corpus: %d rows, 95th percentile %d tokens, %.0f%% CJK characters -> split %s, max_length %d, "
             "kernel sizes %s, %d n-gram buckets%s (%s start), %d epochs, refit schedule %s", survey.rows,
             survey.length_p95, 100 * survey.cjk_share, tokenizer.split, tokenizer.max_length, model.kernel_sizes,
             model.ngram_buckets, " weighed by IDF" if model.ngram_idf else "", config.ngram_init, config.epochs,
             config.refit_schedule)
    return dataclasses.replace(config, tokenizer=tokenizer, model=model)


def class_weights(config: TrainConfig, survey: Survey) -> list[float] | None:
    """Loss weights per class: "balanced" gives rows / (classes x class rows), so every class weighs
    the same in total (multi-label: negatives / positives per class, BCE's pos_weight)."""
    if config.class_weights == "none":
        return None
    counts = [max(c, 1) for c in survey.class_counts]
    if survey.multi_label:
        return [(survey.rows - c) / c for c in counts]
    return [survey.rows / (len(counts) * c) for c in counts]
