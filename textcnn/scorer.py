"""The model stage of a scoring run: a Ray-free Scorer that loads a model directory once per actor
and adds class probabilities (and, when asked, explanations) to the rows that passed their checks."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from pyarrow.fs import FileSystem

from textcnn import artifacts
from textcnn.explain import top_ngrams
from textcnn.loop import autocast, head_probabilities
from textcnn.model import TextCNN
from textcnn.quantize import int8
from textcnn.rows import as_mask
from textcnn.stages import EXPLANATION, PRED_LABEL, PRED_LABELS, PRED_PROB, PROB_PREFIX, tokens_of
from textcnn.text import PAD_ID, trim


class Scorer:
    """Loads a model directory once; each call adds class probabilities to the rows that passed
    their checks (rows with a reason pass through with null scores)."""

    def __init__(self, model_uri: str, use_gpu: bool = False, threads: int = 1,
                 filesystem: FileSystem | None = None, explain: int = 0, precision: str = "auto") -> None:
        torch.set_num_threads(threads)
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.loaded = artifacts.load(model_uri, self.device, filesystem)
        self.precision = precision
        if precision == "int8":
            self.loaded.model = int8(self.loaded.model)
        self.labels = np.array(self.loaded.labels, dtype=object)
        self.explain = explain
        if explain and not isinstance(self.loaded.model, TextCNN):
            raise ValueError(f"{model_uri}: explanations need the PyTorch model directory, not an export")

    def probabilities(self, ids: np.ndarray, chunk: int = 0) -> np.ndarray:
        chunk = chunk or (4096 if self.device.type == "cuda" else 128)   # H200: 4096 ran 2.7x 1024 (cuda_check)
        return probabilities(self.loaded.model, ids, len(self.labels), self.device, chunk,
                             self.loaded.multi_label, self.precision)

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


def probabilities(model: Any, ids: np.ndarray, num_classes: int, device: torch.device,
                  chunk: int = 128, multi_label: bool = False, precision: str = "fp32") -> np.ndarray:
    """Class probabilities (B, C) of token ids (B, L) under model (a TextCNN or an exported one):
    softmax, or a sigmoid per class for a multi-label model; bf16 autocast as precision says
    ("auto": on GPU only), the probabilities themselves always in fp32.

    The model's cost grows with the padded width, so rows are sorted by length and run in chunks
    trimmed to their own longest row. Masked pooling makes each row's score independent of the
    chunk it lands in, so the result is the same as one full-width batch.
    """
    out = np.empty((len(ids), num_classes), dtype=np.float32)
    order = np.argsort((ids != PAD_ID).sum(axis=1), kind="stable")
    with torch.inference_mode(), autocast(device, precision):
        for rows in np.array_split(order, max(1, -(-len(ids) // chunk))):
            x = torch.from_numpy(trim(ids[rows], model.min_length)).long().to(device)
            out[rows] = head_probabilities(model(x), multi_label).cpu().numpy()       # (b, C)
    return out


