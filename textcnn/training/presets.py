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


def resolve(config: TrainConfig, survey: Survey) -> TrainConfig:
    """config with its automatic fields filled in from survey."""
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
    log.info("corpus: %d rows, 95th percentile %d tokens, %.0f%% CJK characters -> split %s, max_length %d, "
             "kernel sizes %s, %d n-gram buckets%s", survey.rows, survey.length_p95, 100 * survey.cjk_share,
             tokenizer.split, tokenizer.max_length, model.kernel_sizes, model.ngram_buckets,
             " weighed by IDF" if model.ngram_idf else "")
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
