"""Evaluate a model directory on labelled Parquet, in-process and streaming (no Ray needed)."""

from __future__ import annotations

import numpy as np
import torch

from textcnn.core import artifacts
from textcnn.training.data import check_columns, encode_labels
from textcnn.training.metrics import report_for


def evaluate_parquet(model_uri: str, data_uri: str, text_column: str = "text",
                     label_column: str = "label", batch_size: int = 1024, threads: int = 2,
                     precision: str = "auto") -> dict:
    """The model's report on data_uri: accuracy, macro-F1, per-class precision/recall/F1 and the
    confusion matrix (ROC-AUC for binary); multi-label at the model's thresholds, micro-F1 too.
    precision as in scoring (int8: what `textcnn score --precision int8` would score)."""
    dataset = check_columns(data_uri, [text_column, label_column], "evaluation data")
    torch.set_num_threads(threads)
    loaded = artifacts.load(model_uri, precision=precision)
    label_ids = {name: i for i, name in enumerate(loaded.labels)}
    trues, probs = [], []
    for batch in dataset.to_batches(columns=[text_column, label_column], batch_size=batch_size):
        trues.append(encode_labels(batch.column(label_column), label_ids, loaded.multi_label,
                                   f"{data_uri}: column '{label_column}'"))
        probs.append(loaded.probabilities(loaded.tokenizer.encode(batch.column(text_column).to_pylist())))
    if not trues:
        raise ValueError(f"{data_uri}: no rows to evaluate")
    report = report_for(np.concatenate(trues), np.concatenate(probs), loaded.labels, loaded.multi_label,
                        loaded.thresholds)
    report.pop("selection_metric")
    return {"model": model_uri, "model_version": loaded.version, "data": data_uri, "precision": precision, **report}
