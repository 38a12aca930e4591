"""Pre-trained word vectors (word2vec text or binary, GloVe) as the embedding's starting point.

The file is streamed once on the driver and only the vocabulary's words are kept, so a
multi-gigabyte GloVe file costs one pass and a (V, E) matrix, not its own size in memory.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from textcnn import storage
from textcnn.core.rows import DataError
from textcnn.core.text import PAD_ID, Tokenizer

log = logging.getLogger(__name__)


_HEAD_BYTES = 1 << 20      # enough for a header and a whole first vector line of any sane dimension


def _header(line: bytes) -> tuple[int, int] | None:
    """word2vec's formats open with "<count> <dim>"; GloVe's has no header."""
    parts = line.strip().split(b" ")
    return (int(parts[0]), int(parts[1])) if len(parts) == 2 and all(p.isdigit() for p in parts) else None


def _is_binary(head: bytes) -> bool:
    """word2vec's binary format (Kim's (2014) GoogleNews vectors): a text header, then per word
    "<word> " and dim little-endian float32s. Told from the text format by whether the line after
    the header reads as a word and dim numbers."""
    first, _, rest = head.partition(b"\n")
    header = _header(first)
    if header is None:
        return False
    values = rest.split(b"\n", 1)[0].rstrip(b" \r").split(b" ")[1:]
    try:
        np.asarray(values, dtype=np.float64)
    except ValueError:
        return True
    return len(values) != header[1]


def _text_records(raw, uri: str) -> Iterator[tuple[str, str, list[str]]]:
    """(where, word, values as text) per line; values are parsed only for the words kept."""
    for line_no, line in enumerate(io.TextIOWrapper(raw, encoding="utf-8", errors="replace"), 1):
        parts = line.rstrip("\n").rstrip(" ").split(" ")
        if line_no == 1 and _header(line.encode()) is not None:
            continue
        yield f"line {line_no}", parts[0], parts[1:]


def _binary_records(raw, uri: str) -> Iterator[tuple[str, str, np.ndarray]]:
    """(where, word, vector) per record. pyarrow's streams have no readline, and a word ends at a
    space, so the file is read in 1 MiB chunks and each word found in the buffer."""
    buf = raw.read(_HEAD_BYTES)
    first = buf.split(b"\n", 1)[0]
    count, dim = _header(first)                    # _is_binary saw it
    pos, need = len(first) + 1, 4 * dim
    for number in range(1, count + 1):
        while (space := buf.find(b" ", pos)) < 0 or len(buf) - space - 1 < need:
            chunk = raw.read(_HEAD_BYTES)
            if not chunk:
                raise DataError(f"embeddings {uri}: the file ends in vector {number} of the {count} "
                                "its header declares")
            buf, pos = buf[pos:] + chunk, 0
        word = buf[pos:space].lstrip(b"\n").decode("utf-8", errors="replace")
        yield f"vector {number}", word, np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1)
        pos = space + 1 + need


def read_vectors(uri: str, tokenizer: Tokenizer) -> np.ndarray:
    """(V, E) float32: row i is the vector of vocabulary token i, NaN where the file lacks it.
    word2vec text, word2vec binary or GloVe, told apart by the file's head; gzip by its extension.

    With a lowercasing tokenizer, a word's first spelling in the file wins ("The" before "the"
    only when "the" is absent)."""
    with storage.open_input(uri) as raw:
        binary = _is_binary(raw.read(_HEAD_BYTES))
    out, found = _vocabulary_rows(uri, binary, tokenizer)
    log.info("embeddings %s (%s): %d of %d vocabulary tokens found (%.1f%%), dimension %d", uri,
             "word2vec binary" if binary else "text", found, len(tokenizer) - 1,
             100.0 * found / max(len(tokenizer) - 1, 1), out.shape[1])
    return out


def _vocabulary_rows(uri: str, binary: bool, tokenizer: Tokenizer) -> tuple[np.ndarray, int]:
    """The file's vectors as (V, E) rows of the vocabulary (NaN where it lacks a token), and how
    many tokens it had; a second pass over the file, after read_vectors' look at its head."""
    index, lower = {t: i for i, t in enumerate(tokenizer.tokens)}, tokenizer.config.lowercase
    out, dim, found = None, 0, 0
    with storage.open_input(uri) as raw:
        for where, word, values in (_binary_records if binary else _text_records)(raw, uri):
            if out is None:
                dim = len(values)
                if dim < 1:
                    raise DataError(f"embeddings {uri}: {where} has no vector")
                out = np.full((len(tokenizer), dim), np.nan, dtype=np.float32)
            if len(values) != dim:
                raise DataError(f"embeddings {uri}: {where} has {len(values)} values, "
                                f"the file's first vector {dim}")
            row = index.get(word.lower() if lower else word)
            if row is None or row == PAD_ID or not np.isnan(out[row, 0]):
                continue
            try:
                out[row] = np.asarray(values, dtype=np.float32)
            except ValueError:
                raise DataError(f"embeddings {uri}: {where} has a value that is not a number") from None
            found += 1
    if out is None:
        raise DataError(f"embeddings {uri}: no vectors in the file")
    return out, found


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
