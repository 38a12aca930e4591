"""The CPU stages of a scoring run, on either side of the Scorer actors (scorer.py):

    read + check + tokenize one unit (tasks) -> Scorer (actors) -> write each unit's parts (tasks)

Every input row leaves either scored or as a dead letter with its reason (rows.py). Nothing here
imports torch, so the task workers start in a fraction of a second; the run itself (plan, lock,
resume, reconcile, commit) is textcnn.scoring.run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow.fs import FileSystem

from textcnn import storage
from textcnn.core.rows import RowLimits, as_mask, as_plain, check_rows
from textcnn.core.text import cached_tokenizer
from textcnn.scoring import drift, ids
from textcnn.scoring.plan import row_key
from textcnn.scoring.records import DEAD_LETTERS, SCORES, StagedPart, UnitOutputs, UnreadableRowGroup
from textcnn.scoring.runs import Layout

log = logging.getLogger(__name__)

PRED_LABEL, PRED_PROB, PROB_PREFIX = "predicted_label", "predicted_prob", "prob_"
PRED_LABELS = "predicted_labels"   # multi-label models: every class at or above its threshold
EXPLANATION = "explanation"     # with --explain K: JSON [{"ngram", "contribution"}], strongest first
LINEAGE = ("model_version", "vocab_hash", "run_id")
# every column name a score file may hold besides the id and prob_<label>, and the partition keys
OUTPUT_COLUMNS = (PRED_LABEL, PRED_LABELS, PRED_PROB, EXPLANATION) + LINEAGE + ("run_date", "run")
READ_ROWS = 8192            # rows per record batch read from a unit
READ_AHEAD_THREADS = 8      # small pieces of a unit read at once: their latency, not bandwidth, counts
TEXT_PREFIX_CHARS = 200     # of a dead-lettered text, kept to help find the problem
# kept input columns travel under this prefix, so that none collides with the stages' own columns
KEEP_PREFIX = "keep:"


@dataclass(frozen=True)
class Columns:
    """What the read stage reads of each input file."""
    id: str | None        # None: the input has no ids; a row's id is "<file name>:<row>" (InputFile.name)
    text: str
    keep: pa.Schema       # carried through to the score files untouched (--keep-columns), with these types

    def names(self) -> list[str]:
        return ([self.id] if self.id else []) + [self.text] + self.keep.names


def _row_ids(piece: dict, rows: np.ndarray) -> pa.Array:
    """The ids of rows of an input without ids: unique by construction, the same on every rerun."""
    return pa.array([f"{piece['name']}:{r}" for r in rows.tolist()], pa.string())


def _kept(rb: pa.RecordBatch | None, columns: Columns, n: int) -> dict[str, pa.Array]:
    """The kept columns of rb under their travelling names (nulls where rb could not be read)."""
    return {KEEP_PREFIX + f.name: as_plain(rb.column(f.name)) if rb is not None else pa.nulls(n, f.type)
            for f in columns.keep}


def tokens_of(batch: pa.Table) -> np.ndarray:
    column = batch["tokens"].combine_chunks()
    return column.flatten().to_numpy().reshape(len(column), column.type.list_size)


@dataclass(frozen=True)
class Duplicates:
    """Where the id pass left each unit's duplicate input rows (ids.unit_file); dir None: no pass
    ran (an input without ids has none)."""
    fs: FileSystem | None
    dir: str | None

    def of(self, unit: int) -> np.ndarray:
        return ids.unit_repeats(self.fs, self.dir, unit) if self.dir else np.empty(0, np.int64)


def _checked_table(unit: dict, piece: dict, first_row: int, seq: int, rb: pa.RecordBatch, tokenizer,
                   limits: RowLimits, columns: Columns) -> pa.Table:
    rows = np.arange(first_row, first_row + rb.num_rows, dtype=np.int64)
    # without an id column the row numbers stand in for the id checks: never null, blank or repeated
    checked = check_rows(rb.column(columns.id) if columns.id else pa.array(rows), rb.column(columns.text),
                         np.isin(row_key(piece["file"], rows), unit["dups"]), tokenizer, limits)
    bad = checked.reasons != None  # noqa: E711
    ids = as_plain(rb.column(columns.id)) if columns.id else _row_ids(piece, rows)
    return pa.table({
        "unit": pa.array(np.full(rb.num_rows, unit["unit"], dtype=np.int32)),
        "row": pa.array(rows),                                  # within its file
        "seq": pa.array(np.arange(seq, seq + rb.num_rows, dtype=np.int64)),   # within its unit
        "id": ids,
        "reason": pa.array(checked.reasons, pa.string()),
        # what a dead letter keeps, on bad rows only
        "source_file": pa.array([piece["uri"] if b else None for b in bad], pa.string()),
        "text_prefix": pa.array([t[:TEXT_PREFIX_CHARS] if b and t is not None else None
                                 for t, b in zip(checked.texts, bad)], pa.string()),
        "tokens": pa.FixedSizeListArray.from_arrays(pa.array(checked.tokens.ravel()), checked.tokens.shape[1]),
        **_kept(rb, columns, rb.num_rows),
    })


def _read_piece(fs: FileSystem, piece: dict, columns: list[str]) -> pa.Table:
    with fs.open_input_file(storage.path_of(piece["uri"])) as f:
        return pq.ParquetFile(f).read_row_groups(piece["row_groups"], columns=columns)


def _stream(fs: FileSystem, piece: dict, groups: list[int], columns: list[str],
            ahead: Future | None) -> Iterator[pa.RecordBatch]:
    """The record batches of a piece's row groups: from its table read ahead, or from its file."""
    if ahead is not None:
        yield from ahead.result().to_batches(max_chunksize=READ_ROWS)
        return
    with fs.open_input_file(storage.path_of(piece["uri"])) as f:
        yield from pq.ParquetFile(f).iter_batches(batch_size=READ_ROWS, row_groups=groups, columns=columns)


def _group_at(piece: dict, row: int) -> tuple[int, int]:
    """(index within the piece, first row) of the piece's row group holding row."""
    start = piece["first_row"]
    for i, n in enumerate(piece["group_rows"]):
        if row < start + n:
            return i, start
        start += n
    raise IndexError(f"row {row} is past the piece")


def _piece_batches(fs: FileSystem, piece: dict, columns: list[str],
                   ahead: Future | None) -> Iterator[tuple[int, pa.RecordBatch | str]]:
    """(first row, record batch) of a piece: from its table read ahead, or streamed from its file.
    For a row group that cannot be read (a corrupt page behind a sound footer): (its first unread
    row, the read error), and reading goes on with the next row group. Its rows become dead letters;
    the driver then refuses to commit them unless --skip-bad-files says to (score.py). Raising here
    instead would end the run in Ray's traceback, and lose the rest of the night's work."""
    row, first = piece["first_row"], 0          # first: index of the row group the stream starts at
    while first < len(piece["row_groups"]):
        try:
            for rb in _stream(fs, piece, piece["row_groups"][first:], columns, ahead):
                yield row, rb
                row += rb.num_rows
            return
        except (OSError, pa.ArrowException) as e:
            if ahead is not None:     # read again as a stream, to find the row group at fault
                ahead = None
                continue
            at, start = _group_at(piece, row)
            last = start + piece["group_rows"][at] - 1
            yield row, f"row group {piece['row_groups'][at]} (rows {start}-{last}): {storage.reason(e)}"
            row, first = start + piece["group_rows"][at], at + 1


def _group_ids(fs: FileSystem, piece: dict, at: int, first: int, n: int, id_column: str) -> pa.Array:
    """n ids of the piece's row group at, from its row first on, as strings; nulls when they do not
    read either (the plan read them once)."""
    try:
        with fs.open_input_file(storage.path_of(piece["uri"])) as f:
            ids = pq.ParquetFile(f).read_row_group(piece["row_groups"][at], columns=[id_column]).column(0)
        return as_plain(ids.combine_chunks()).slice(first, n).cast(pa.string())
    except (OSError, pa.ArrowException):
        return pa.nulls(n, pa.string())


def _unreadable_table(fs: FileSystem, unit: dict, piece: dict, first_row: int, seq: int, why: str,
                      columns: Columns, max_length: int) -> pa.Table:
    """Dead letters for the rows of first_row's row group from first_row on, with their ids when the
    id column of that group still reads."""
    at, start = _group_at(piece, first_row)
    n = start + piece["group_rows"][at] - first_row
    rows = np.arange(first_row, first_row + n, dtype=np.int64)
    ids = _group_ids(fs, piece, at, first_row - start, n, columns.id) if columns.id else _row_ids(piece, rows)
    return pa.table({
        "unit": pa.array(np.full(n, unit["unit"], dtype=np.int32)),
        "row": pa.array(rows),
        "seq": pa.array(np.arange(seq, seq + n, dtype=np.int64)),
        "id": ids, "reason": pa.array(["row_group_unreadable"] * n, pa.string()),
        "source_file": pa.array([piece["uri"]] * n, pa.string()),
        "text_prefix": pa.array([why[:TEXT_PREFIX_CHARS]] * n, pa.string()),
        "tokens": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(n * max_length, np.int32)), max_length),
        **_kept(None, columns, n),
    })


def read_unit(batch: pa.Table, fs: FileSystem, columns: Columns, vocab: dict[str, Any],
              vocab_hash: str, limits: RowLimits, duplicates: Duplicates) -> Iterator[pa.Table]:
    """The CPU stage: read one unit's rows, piece by piece, check them and tokenize the good ones,
    in tables of about READ_ROWS rows. Small pieces (small files packed into the unit) are read
    ahead in threads, so their round trips to storage overlap; they hold about PACK_ROWS rows in all.
    The unit's duplicate rows are loaded here, from its own file: the driver never holds them."""
    unit = batch.to_pylist()[0]
    unit["dups"] = duplicates.of(unit["unit"])
    tokenizer = cached_tokenizer(vocab, vocab_hash)
    names, seq, pending = columns.names(), 0, []
    with ThreadPoolExecutor(READ_AHEAD_THREADS) as pool:
        ahead = [pool.submit(_read_piece, fs, p, names) if p["rows"] <= READ_ROWS else None
                 for p in unit["pieces"]]
        for piece, future in zip(unit["pieces"], ahead):
            for first_row, rb in _piece_batches(fs, piece, names, future):
                pending.append(_unreadable_table(fs, unit, piece, first_row, seq, rb, columns,
                                                 tokenizer.config.max_length) if isinstance(rb, str) else
                               _checked_table(unit, piece, first_row, seq, rb, tokenizer, limits, columns))
                seq += pending[-1].num_rows
                if sum(t.num_rows for t in pending) >= READ_ROWS:
                    yield pa.concat_tables(pending)
                    pending = []
    if pending:
        yield pa.concat_tables(pending)


def _scores_table(part: pa.Table, id_column: str, lineage: dict[str, str]) -> pa.Table:
    """A score file's columns: the id, the kept input columns, the scores, the lineage."""
    kept = [c for c in part.column_names if c.startswith(KEEP_PREFIX)]
    keep = [c for c in part.column_names
            if c in (PRED_LABEL, PRED_LABELS, PRED_PROB, EXPLANATION) or c.startswith(PROB_PREFIX)]
    out = part.select(["id"] + kept + keep).rename_columns(
        [id_column] + [c[len(KEEP_PREFIX):] for c in kept] + keep)
    for name, value in lineage.items():
        out = out.append_column(name, pa.array([value] * part.num_rows, pa.string()))
    return out


def _dead_table(part: pa.Table, run_id: str) -> pa.Table:
    return pa.table({"id": part["id"].cast(pa.string()), "source_file": part["source_file"],
                     "source_row": part["row"], "reason": part["reason"], "text_prefix": part["text_prefix"],
                     "run_id": [run_id] * part.num_rows})


def _write(fs: FileSystem, uri: str, table: pa.Table) -> None:
    path = storage.path_of(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, path, filesystem=fs)


def _unit_part(fs: FileSystem, part: pa.Table, layout: Layout, unit: int, id_column: str,
               lineage: dict[str, str]) -> UnitOutputs:
    """Write one unit's rows of a block as a score file and a dead-letter file, named by the block's
    first row in the unit (so a retried block writes the same names); what it wrote."""
    first = int(pc.min(part["seq"]).as_py())
    bad = as_mask(part["reason"].is_valid())
    scored, dead = part.filter(pa.array(~bad)), part.filter(pa.array(bad))
    parts = []
    for dataset, rows, table in ((SCORES, scored, lambda: _scores_table(scored, id_column, lineage)),
                                 (DEAD_LETTERS, dead, lambda: _dead_table(dead, lineage["run_id"]))):
        if rows.num_rows:
            parts.append(StagedPart(dataset, layout.staged_part(dataset, unit, first), first, rows.num_rows))
            _write(fs, parts[-1].uri, table())
    unreadable = dead.filter(pc.equal(dead["reason"], "row_group_unreadable"))
    groups = Counter(zip(unreadable["source_file"].to_pylist(), unreadable["text_prefix"].to_pylist()))
    return UnitOutputs(part.num_rows, parts, dict(Counter(scored[PRED_LABEL].to_pylist())),
                       dict(Counter(dead["reason"].to_pylist())), drift.histogram(scored[PRED_PROB].to_numpy()),
                       [UnreadableRowGroup(uri, why, n) for (uri, why), n in groups.items()])


def write_parts(batch: pa.Table, fs: FileSystem, layout: Layout, id_column: str,
                lineage: dict[str, str]) -> pa.Table:
    """The write stage: each unit's rows in this block to staging; one row per unit, with what it
    wrote (UnitOutputs as JSON: a Ray Data block holds Arrow columns)."""
    out = []
    for unit in np.unique(batch["unit"].to_numpy()).tolist():
        part = batch.filter(pc.equal(batch["unit"], unit))
        out.append({"unit": unit, "record": _unit_part(fs, part, layout, unit, id_column, lineage).to_json()})
    return pa.Table.from_pylist(out, schema=pa.schema([("unit", pa.int32()), ("record", pa.string())]))
