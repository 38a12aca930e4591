"""Ad-hoc scoring (`textcnn predict`): texts in from stdin or a txt, csv, jsonl or Parquet file, one
JSON line out per text, in input order, in one process and without Ray.

The model directory, row checks, tokenizer and probabilities are a scoring run's own
(artifacts.load through Scorer, rows.check_rows, Scorer's probabilities and label sets), so a text
scores here as it does in `textcnn score`, and a row a run would dead-letter prints its reason.
Texts are read, checked and scored a batch at a time: a file of millions of lines is never held.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from textcnn import storage
from textcnn.config import PREDICT_BATCH_ROWS as BATCH_ROWS
from textcnn.core.rows import DataError, RowLimits, check_rows, plain_type
from textcnn.scoring.scorer import Scorer
from textcnn.scoring.stages import PRED_LABEL, PRED_LABELS, PRED_PROB, PROB_PREFIX

_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_READ_BUFFER = 1 << 20


def input_format(path: str | None, fmt: str = "auto") -> str:
    """fmt, or from path's suffix (a .gz after it aside): .csv, .jsonl/.ndjson, .parquet/.pq, else txt."""
    if fmt != "auto":
        return fmt
    name = (path or "").lower().removesuffix(".gz")
    return next((f for suffix, f in _SUFFIXES.items() if name.endswith(suffix)), "txt")


def _batches(values: Iterator, rows: int, kind: pa.DataType) -> Iterator[pa.Array]:
    """values as arrays of up to rows each."""
    batch = []
    for value in values:
        batch.append(value)
        if len(batch) == rows:
            yield pa.array(batch, kind)
            batch = []
    if batch:
        yield pa.array(batch, kind)


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The stream's lines without their line ends; kept as bytes, so that a line that is not UTF-8
    is the row check's text_invalid_utf8, not an error of the whole input."""
    for line in stream:
        yield line[:-2] if line.endswith(b"\r\n") else line[:-1] if line.endswith(b"\n") else line


def _json_texts(stream: IO[bytes], uri: str, column: str) -> Iterator[str | None]:
    """column of each JSON line; a blank line is an empty text (so output lines still match input lines)."""
    for number, line in enumerate(_lines(stream), 1):
        if not line.strip():
            yield ""
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise DataError(f"{uri}: line {number} is not JSON ({e})") from None
        if not isinstance(record, dict) or column not in record:
            raise DataError(f"{uri}: line {number} has no column '{column}'")
        if not isinstance(record[column], (str, type(None))):
            raise DataError(f"{uri}: line {number}: column '{column}' is {type(record[column]).__name__}, "
                            "not a string")
        yield record[column]


def _csv_texts(stream: IO[bytes], uri: str, column: str, rows: int) -> Iterator[pa.Array]:
    """column of each CSV record, as bytes (see _lines); quoted values may hold line breaks."""
    try:
        reader = pacsv.open_csv(stream, parse_options=pacsv.ParseOptions(newlines_in_values=True),
                                convert_options=pacsv.ConvertOptions(include_columns=[column],
                                                                     column_types={column: pa.binary()}))
        for batch in reader:
            for start in range(0, batch.num_rows, rows):
                yield batch.column(0).slice(start, rows)
    except KeyError:
        raise DataError(f"{uri}: no column '{column}'") from None
    except pa.ArrowInvalid as e:
        raise DataError(f"{uri}: not readable as CSV: {storage.reason(e)}") from None


def _parquet_texts(uri: str, column: str, rows: int) -> Iterator[pa.Array]:
    fs, path = storage.resolve(uri)
    try:
        with fs.open_input_file(path) as f:
            parquet = pq.ParquetFile(f)
            schema = parquet.schema_arrow
            if column not in schema.names:
                raise DataError(f"{uri}: no column '{column}' (it has {schema.names})")
            kind = plain_type(schema.field(column).type)
            if not (pa.types.is_string(kind) or pa.types.is_binary(kind)):
                raise DataError(f"{uri}: column '{column}' is {schema.field(column).type}, not a string or binary")
            for batch in parquet.iter_batches(batch_size=rows, columns=[column]):
                yield batch.column(0)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{uri}: not readable as Parquet: {storage.reason(e)}") from None


def _stream_texts(stream: IO[bytes], uri: str, fmt: str, column: str, rows: int) -> Iterator[pa.Array]:
    if fmt == "csv":
        return _csv_texts(stream, uri, column, rows)
    if fmt == "jsonl":
        return _batches(_json_texts(stream, uri, column), rows, pa.string())
    return _batches(_lines(stream), rows, pa.binary())


def read_texts(uri: str | None, stdin: IO[bytes], fmt: str = "auto", column: str = "text",
               rows: int = BATCH_ROWS) -> Iterator[pa.Array]:
    """The texts of uri (None or "-": stdin, read as fmt, txt unless told), as arrays of up to rows
    texts: txt one text a line; csv, jsonl and Parquet the column named column."""
    fmt = input_format(None if uri in (None, "-") else uri, fmt)
    if uri in (None, "-"):
        if fmt == "parquet":
            raise DataError("stdin: Parquet is read from a file (--input), not from stdin")
        yield from _stream_texts(stdin, "stdin", fmt, column, rows)
        return
    missing = storage.missing_reason(uri)
    if missing:
        raise DataError(f"{uri}: {missing}")
    if fmt == "parquet":
        yield from _parquet_texts(uri, column, rows)
        return
    fs, path = storage.resolve(uri)
    try:
        with fs.open_input_stream(path) as raw:      # .gz and the like are decompressed as they are read
            yield from _stream_texts(io.BufferedReader(raw, _READ_BUFFER), uri, fmt, column, rows)
    except OSError as e:
        raise DataError(f"{uri}: not readable: {storage.reason(e)}") from None


def _record(row: dict, labels: list[str], all_classes: bool, multi_label: bool) -> dict:
    """One text's JSON object: its reason when a scoring run would dead-letter it, else its scores."""
    if row["reason"] is not None:
        return {"error": row["reason"]}
    out = {"label": row[PRED_LABEL], "probability": round(row[PRED_PROB], 6)}
    if multi_label:
        out["labels"] = row[PRED_LABELS]
    if all_classes:
        out["probabilities"] = {name: round(row[PROB_PREFIX + name], 6) for name in labels}
    return out


def predict_lines(scorer: Scorer, texts: Iterator[pa.Array], limits: RowLimits,
                  all_classes: bool = False) -> Iterator[str]:
    """JSON lines, one per text, a batch of texts at a time (joined by newlines, no trailing one)."""
    labels, multi_label = scorer.loaded.labels, scorer.loaded.multi_label
    seen = 0
    for text in texts:
        if not len(text):
            continue
        # line numbers stand in for ids: the id checks never fail, and there are no duplicates
        rows = pa.array(np.arange(seen, seen + len(text), dtype=np.int64))
        checked = check_rows(rows, text, np.zeros(len(text), dtype=bool), scorer.loaded.tokenizer, limits)
        seen += len(text)
        tokens = pa.FixedSizeListArray.from_arrays(pa.array(checked.tokens.ravel()), checked.tokens.shape[1])
        scored = scorer(pa.table({"reason": pa.array(checked.reasons, pa.string()), "tokens": tokens}))
        yield "\n".join(json.dumps(_record(row, labels, all_classes, multi_label), ensure_ascii=False)
                        for row in scored.to_pylist())
