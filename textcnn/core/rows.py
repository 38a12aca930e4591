"""Row checks for scoring: which rows of a batch can be scored, and why each other one cannot.

Ray-free. A row that fails a check is never dropped: it leaves the pipeline as a dead letter with
its id, source file, row number and one reason from REASONS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from textcnn.core.text import PAD_ID, UNK_ID, Tokenizer
from textcnn.errors import TextcnnError


class DataError(TextcnnError, ValueError):
    """Input data is missing, unreadable or lacks a needed column; the message names the URI."""


REASONS = {
    "id_null": "the id is null",
    "id_empty": "the id is empty or blank",
    "id_too_long": "the id is longer than max_id_chars",
    "id_duplicate": "the id was already seen earlier in this run's input (the first row is scored)",
    "text_null": "the text is null",
    "text_invalid_utf8": "the text is bytes that are not valid UTF-8",
    "text_control_chars": "the text holds NUL, DEL or other C0/C1 control characters (binary data)",
    "text_too_long": "the text is longer than max_text_chars",
    "text_empty": "the text is empty or blank",
    "text_unknown_only": "no token of the text is in the vocabulary (scored with allow_unknown_only)",
    "row_group_unreadable": "the row's row group of its file could not be read (with --skip-bad-files); "
                            "text_prefix holds the read error",
}
# C0 controls but tab, newline and carriage return; DEL; the C1 controls (U+0080-U+009F), which
# mis-decoded Latin-1/CP1252 bytes and binary blobs bring and no text needs
_CONTROL = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"


@dataclass(frozen=True)
class RowLimits:
    max_text_chars: int
    max_id_chars: int
    allow_unknown_only: bool


@dataclass
class CheckedBatch:
    reasons: np.ndarray      # (B,) object: None for a good row, else a key of REASONS
    texts: list              # (B,) str | None, decoded
    tokens: np.ndarray       # (B, L) int32; all padding on bad rows


def _decode(column: pa.Array) -> tuple[list, pa.Array, np.ndarray]:
    """Texts as str (and as an Arrow string array), and where bytes failed to decode."""
    if pa.types.is_binary(column.type):
        texts, bad = [], np.zeros(len(column), dtype=bool)
        for i, raw in enumerate(column.to_pylist()):
            try:
                texts.append(None if raw is None else raw.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append(None)
                bad[i] = True
        return texts, pa.array(texts, type=pa.string()), bad
    return column.to_pylist(), column, np.zeros(len(column), dtype=bool)


def plain_type(t: pa.DataType) -> pa.DataType:
    """The type a column of type t is read as: strings as string, bytes as binary, whatever their
    Arrow layout (large, view or dictionary-encoded, as several Parquet writers produce them)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    return t


def as_plain(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """column cast to its plain_type (no copy when it is one already)."""
    wanted = plain_type(column.type)
    return column if column.type == wanted else column.cast(wanted)


def _flag(reasons: np.ndarray, mask, reason: str) -> None:
    """Set reason where mask holds and no earlier check already failed the row."""
    mask = np.asarray(mask, dtype=bool) & (reasons == None)  # noqa: E711 (element-wise)
    reasons[mask] = reason


def as_mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean Arrow array as NumPy, nulls as False."""
    return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _id_checks(ids: pa.Array, reasons: np.ndarray, duplicate: np.ndarray, limits: RowLimits) -> None:
    _flag(reasons, as_mask(ids.is_null()), "id_null")
    if pa.types.is_string(ids.type):
        _flag(reasons, as_mask(pc.equal(pc.utf8_trim_whitespace(ids), "")), "id_empty")
        _flag(reasons, as_mask(pc.greater(pc.utf8_length(ids), limits.max_id_chars)), "id_too_long")
    _flag(reasons, duplicate, "id_duplicate")


def _text_checks(arr: pa.Array, undecodable: np.ndarray, reasons: np.ndarray, limits: RowLimits) -> None:
    _flag(reasons, undecodable, "text_invalid_utf8")
    _flag(reasons, as_mask(arr.is_null()), "text_null")
    _flag(reasons, as_mask(pc.match_substring_regex(arr, _CONTROL)), "text_control_chars")
    _flag(reasons, as_mask(pc.greater(pc.utf8_length(arr), limits.max_text_chars)), "text_too_long")
    _flag(reasons, as_mask(pc.equal(pc.utf8_trim_whitespace(arr), "")), "text_empty")


def check_rows(ids: pa.Array, text: pa.Array, duplicate: np.ndarray, tokenizer: Tokenizer,
               limits: RowLimits) -> CheckedBatch:
    """Check and tokenize one batch; duplicate marks rows whose id occurred earlier in the run."""
    reasons = np.full(len(ids), None, dtype=object)
    ids, text = as_plain(ids), as_plain(text)
    _id_checks(ids, reasons, duplicate, limits)
    texts, arr, undecodable = _decode(text)
    _text_checks(arr, undecodable, reasons, limits)
    good = reasons == None  # noqa: E711
    tokens = np.zeros((len(ids), tokenizer.config.max_length), dtype=np.int32)  # (B, L)
    tokens[good] = tokenizer.encode([t for t, ok in zip(texts, good) if ok])
    if not limits.allow_unknown_only:
        _flag(reasons, (tokens > UNK_ID).sum(axis=1) == 0, "text_unknown_only")
        tokens[reasons != None] = PAD_ID  # noqa: E711
    return CheckedBatch(reasons, texts, tokens)
