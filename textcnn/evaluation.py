"""Evaluate a model directory on labelled Parquet, in-process and streaming (no Ray needed)."""

from __future__ import annotations

import numpy as np

from textcnn.data import check_columns
from textcnn.metrics import classification_report
from textcnn.scorer import Scorer


def evaluate_parquet(model_uri: str, data_uri: str, text_column: str = "text",
                     label_column: str = "label", batch_size: int = 1024, threads: int = 2) -> dict:
    """accuracy, macro_f1, per-class precision/recall/F1 and the confusion matrix on data_uri."""
    dataset = check_columns(data_uri, [text_column, label_column], "evaluation data")
    scorer = Scorer(model_uri, threads=threads)
    label_ids = {name: i for i, name in enumerate(scorer.loaded.labels)}
    trues, preds = [], []
    for batch in dataset.to_batches(columns=[text_column, label_column], batch_size=batch_size):
        names = [str(v) for v in batch.column(label_column).to_pylist()]
        unknown = sorted(set(names) - label_ids.keys())
        if unknown:
            raise ValueError(f"{data_uri}: labels {unknown} in '{label_column}' are not among the "
                             f"model's classes {scorer.loaded.labels}")
        ids = scorer.loaded.tokenizer.encode(batch.column(text_column).to_pylist())  # (B, L)
        preds.append(scorer.probabilities(ids).argmax(axis=1))
        trues.append(np.array([label_ids[n] for n in names], dtype=np.int64))
    y_true = np.concatenate(trues) if trues else np.zeros(0, dtype=np.int64)
    y_pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    report = classification_report(y_true, y_pred, scorer.loaded.labels)
    return {"model": model_uri, "model_version": scorer.loaded.version, "data": data_uri, **report}
