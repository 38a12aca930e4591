"""Where the n-gram branch starts, before the CNN trains (TrainConfig.ngram_init, resolved by presets):
- "naive_bayes": naive Bayes weights from the training rows' n-gram counts (textcnn.training.naive_bayes);
- "logistic": the logistic regression over the branch's features (textcnn.training.logistic), the
  default for an IDF-weighted branch on small training sets;
- "zeros": the plain CNN's start.
Either way a model with IDF takes its IDF weights from the same counts. Ray-free: a worker passes its
shard's batches, and ``reduce`` sums tensors across workers, so every worker starts the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

import torch

from textcnn.core.model import TextCNN
from textcnn.training import logistic, naive_bayes
from textcnn.training.loop import Batch, Objective

log = logging.getLogger(__name__)

STARTS = {"naive_bayes": "naive Bayes start", "logistic": "logistic regression start", "zeros": "zeros start"}


def init_ngrams(model: TextCNN, batches: Iterable[Batch], objective: Objective,
                reduce: Callable[[torch.Tensor], torch.Tensor] | None = None, start: str = "naive_bayes") -> None:
    """Set the n-gram branch of model (unwrapped, before DDP) from batches: its IDF weights, if it
    has them, and its start (see the module); reduce sums across workers (None: one worker)."""
    if start not in STARTS:                     # "auto" is resolved by presets before any model is built
        raise ValueError(f"n-gram start must be one of {sorted(STARTS)}, got {start!r}")
    if model.buckets <= 0 or (start == "zeros" and not model.use_idf):
        return
    if start == "logistic":
        batches = list(batches)                 # read twice: counted, then fitted
    counts = naive_bayes.count_ngrams(model, batches, objective.multi_label)
    if reduce is not None:
        counts = reduce(counts)
    if model.use_idf:
        model.ngram_idf.copy_(naive_bayes.idf(counts))
    if start == "naive_bayes":
        model.ngrams.weight.data.copy_(naive_bayes.weights(counts, objective.multi_label))
    elif start == "logistic":
        logistic.start(model, batches, counts, objective, reduce)
    log.info("n-gram branch: %s%s, %d of %d buckets in use over %d rows", STARTS[start],
             " and IDF" * model.use_idf, int((counts[-1, :-1] > 0).sum()), model.buckets, int(counts[-1, -1]))
