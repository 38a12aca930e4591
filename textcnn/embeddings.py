"""Pre-trained word vectors (word2vec or GloVe text format) as the embedding's starting point.

The file is streamed once on the driver and only the vocabulary's words are kept, so a
multi-gigabyte GloVe file costs one pass and a (V, E) matrix, not its own size in memory.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import torch
from torch import nn

from textcnn import storage
from textcnn.rows import DataError
from textcnn.text import PAD_ID, Tokenizer

log = logging.getLogger(__name__)


def _is_header(parts: list[str]) -> bool:
    """word2vec's text format opens with "<count> <dim>"; GloVe's has no header."""
    return len(parts) == 2 and all(p.isdigit() for p in parts)


def read_vectors(uri: str, tokenizer: Tokenizer) -> np.ndarray:
    """(V, E) float32: row i is the vector of vocabulary token i, NaN where the file lacks it.

    With a lowercasing tokenizer, a word's first spelling in the file wins ("The" before "the"
    only when "the" is absent)."""
    index, lower = {t: i for i, t in enumerate(tokenizer.tokens)}, tokenizer.config.lowercase
    out, dim, found = None, 0, 0
    with storage.open_input(uri) as raw:
        for line_no, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), 1):
            parts = line.rstrip("\n").rstrip(" ").split(" ")
            if line_no == 1 and _is_header(parts):
                continue
            if out is None:
                dim = len(parts) - 1
                if dim < 1:
                    raise DataError(f"embeddings {uri}: line {line_no} has no vector")
                out = np.full((len(tokenizer), dim), np.nan, dtype=np.float32)
            if len(parts) - 1 != dim:
                raise DataError(f"embeddings {uri}: line {line_no} has {len(parts) - 1} values, "
                                f"the file's first vector {dim}")
            word = parts[0].lower() if lower else parts[0]
            row = index.get(word)
            if row is None or row == PAD_ID or not np.isnan(out[row, 0]):
                continue
            try:
                out[row] = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise DataError(f"embeddings {uri}: line {line_no} has a value that is not a number") from None
            found += 1
    if out is None:
        raise DataError(f"embeddings {uri}: no vectors in the file")
    log.info("embeddings %s: %d of %d vocabulary tokens found (%.1f%%), dimension %d", uri, found,
             len(tokenizer) - 1, 100.0 * found / max(len(tokenizer) - 1, 1), dim)
    return out


def apply_vectors(embedding: nn.Embedding, vectors: np.ndarray, freeze: bool) -> None:
    """Copy the found rows into embedding; the rest start uniform with the variance of the file's
    vectors, as in Kim (2014), and always learn. Left at nn.Embedding's N(0, 1), a word missing from
    the file would start several times longer than the file's (skip-gram vectors trained here had
    values with a standard deviation of 0.28) and outweigh them in every convolution.

    Frozen, the found rows get no gradient (a hook zeroes their rows of it), so with no weight
    decay on the embedding (see loop.optimizer_and_schedule) AdamW leaves them exactly as read."""
    is_found = ~np.isnan(vectors[:, 0])
    found = torch.from_numpy(is_found)
    rest = ~found
    if embedding.padding_idx is not None:
        rest[embedding.padding_idx] = False                          # <pad> stays zero
    with torch.no_grad():
        embedding.weight[found] = torch.from_numpy(vectors[is_found])
        if is_found.any() and rest.any():
            bound = float(np.sqrt(3.0) * vectors[is_found].std())     # U(-a, a) has variance a^2 / 3
            embedding.weight[rest] = torch.empty(int(rest.sum()), vectors.shape[1]).uniform_(-bound, bound)
    if freeze:
        keep = (~found).to(embedding.weight.dtype).unsqueeze(1)          # (V, 1)
        embedding.weight.register_hook(lambda grad: grad * keep.to(grad.device))
