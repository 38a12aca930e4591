"""The model stage of a scoring run: a Ray-free Scorer that loads a model directory once per actor
and adds class probabilities (and, when asked, explanations) to the rows that passed their checks."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import torch
from pyarrow.fs import FileSystem

from textcnn.core import artifacts
from textcnn.core.explain import top_ngrams
from textcnn.core.model import TextCNN
from textcnn.core.rows import as_mask
from textcnn.core.text import PAD_ID
from textcnn.scoring.stages import EXPLANATION, PRED_LABEL, PRED_LABELS, PRED_PROB, PROB_PREFIX, tokens_of


class Scorer:
    """Loads a model directory once; each call adds class probabilities to the rows that passed
    their checks (rows with a reason pass through with null scores)."""

    def __init__(self, model_uri: str, use_gpu: bool = False, threads: int = 1,
                 filesystem: FileSystem | None = None, explain: int = 0, precision: str = "auto") -> None:
        torch.set_num_threads(threads)
        self.loaded = artifacts.load(model_uri, "cuda" if use_gpu else "cpu", filesystem, precision)
        self.labels = np.array(self.loaded.labels, dtype=object)
        self.explain = explain
        if explain and not isinstance(self.loaded.model, TextCNN):
            raise ValueError(f"{model_uri}: explanations need the PyTorch model directory, not an export")

    def probabilities(self, ids: np.ndarray, chunk: int = 0) -> np.ndarray:
        return self.loaded.probabilities(ids, chunk)                        # (B, C)

    def __call__(self, batch: pa.Table) -> pa.Table:
        tokens = tokens_of(batch)                                           # (B, L)
        good = as_mask(batch["reason"].is_null())
        probs = np.zeros((batch.num_rows, len(self.labels)), dtype=np.float32)
        probs[good] = self.probabilities(tokens[good])
        best = probs.argmax(axis=1)
        out = batch.drop_columns(["tokens"])
        out = out.append_column(PRED_LABEL, pa.array(self.labels[best], pa.string(), mask=~good))
        out = out.append_column(PRED_PROB, pa.array(probs[np.arange(len(best)), best], mask=~good))
        if self.loaded.multi_label:
            out = out.append_column(PRED_LABELS, self._label_sets(probs, good))
        for i, name in enumerate(self.loaded.labels):
            out = out.append_column(PROB_PREFIX + name, pa.array(probs[:, i], mask=~good))
        if self.explain:
            out = out.append_column(EXPLANATION, pa.array(self._explanations(tokens, best, good), pa.string()))
        return out

    def _label_sets(self, probs: np.ndarray, good: np.ndarray) -> pa.Array:
        """Multi-label: every class at or above its threshold, per row (null for bad rows)."""
        above = probs >= np.asarray(self.loaded.thresholds, dtype=np.float32)[None, :]  # (B, C)
        rows = [list(self.labels[a]) if g else None for a, g in zip(above, good)]
        return pa.array(rows, pa.list_(pa.string()))

    def _explanations(self, tokens: np.ndarray, best: np.ndarray, good: np.ndarray) -> list[str | None]:
        """JSON lists of the top n-grams of each good row; unknown words show as <unk>."""
        vocab = self.loaded.tokenizer.tokens
        rows = np.flatnonzero(good)
        words = [[vocab[i] for i in tokens[r] if i != PAD_ID] for r in rows]
        ngrams = top_ngrams(self.loaded.model, tokens[rows], best[rows], words, self.explain,
                            self.loaded.tokenizer.by_chars)
        out: list[str | None] = [None] * len(tokens)
        for r, row in zip(rows, ngrams):
            out[r] = json.dumps([{"ngram": g.text, "contribution": round(g.contribution, 4)} for g in row],
                                ensure_ascii=False)
        return out
