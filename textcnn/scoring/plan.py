"""The input plan of a scoring run: which files, how many rows, cut into units of work.

Everything here runs on the driver, before any actor starts, from each file's footer: missing
columns, unusable column types and unreadable files are found up front and reported together. The
ids themselves are read by the cluster (ids.py): the driver holds O(files + units), never a row.
A unit is a run of consecutive row groups, up to unit_rows rows, of one file or, where files are
small, of several consecutive files up to PACK_ROWS rows (its pieces); it is what the run commits,
and what a resumed run skips, as one. Packing small files together keeps a corpus of many small
files from paying a task, a staged file and a commit per file. Row numbers are positions within
the file, so (file, row) names every input row across reruns.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, astuple, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyarrow.fs import FileSystem

from textcnn import storage
from textcnn.core.rows import DataError, plain_type

log = logging.getLogger(__name__)

_IO_THREADS = 16        # footers are small reads dominated by latency (S3 round trips)
# More files than this are read by Ray tasks of this many files each (when the caller gives a map):
# 100,000 footers at ~30 ms each over S3 are ~3 minutes on 16 threads of one head, seconds on a cluster.
FOOTER_TASK_FILES = 1000

Mapper = Callable[[Callable, list[tuple]], list]     # runs fn(*args) for each args, results in order
# Files share a unit up to this many rows: enough that a corpus of small files does not pay a read
# task, a staged file and a commit per file (a unit costs ~0.1 s of those over S3, its 8,192 rows
# ~3 s on a CPU actor), few enough that a corpus of a few hundred thousand rows still makes
# units for every read task of a cluster.
PACK_ROWS = 8192


@dataclass(frozen=True)
class InputFile:
    uri: str
    rows: int
    row_groups: tuple[int, ...]   # rows in each row group
    name: str = ""                # relative to the input root (a one-file input: its base name)


@dataclass(frozen=True)
class Piece:
    """A unit's rows from one file."""
    file: int                     # index into Plan.files
    row_groups: tuple[int, ...]   # row group indices, consecutive
    first_row: int                # the piece's first row, counted within its file
    rows: int


@dataclass(frozen=True)
class Unit:
    index: int
    pieces: tuple[Piece, ...]     # in file order; only the first and last may be part of a file

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pieces)


@dataclass
class Plan:
    files: list[InputFile]
    units: list[Unit]
    unit_rows: int
    skipped: list[dict] = field(default_factory=list)   # {"uri", "reason"} of unreadable files
    # the columns carried through to the score files (--keep-columns), with their one type in every file
    keep: pa.Schema = field(default_factory=lambda: pa.schema([]), compare=False)

    def without(self, bad: dict[str, str]) -> Plan:
        """The plan with the files in bad ({uri: reason}) moved to skipped."""
        files = [f for f in self.files if f.uri not in bad]
        return Plan(files, _units(files, self.unit_rows), self.unit_rows,
                    self.skipped + [{"uri": u, "reason": r} for u, r in sorted(bad.items())], self.keep)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def fingerprint(self) -> str:
        """Identifies the input as planned: a resumed run must see the same files and rows, cut into
        the same units (a unit's index names the same rows)."""
        canonical = json.dumps([[[f.uri, f.rows, f.row_groups] for f in self.files],
                                [[astuple(p) for p in u.pieces] for u in self.units]], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"files": [asdict(f) for f in self.files], "units": [asdict(u) for u in self.units],
                "skipped": self.skipped}


_ID_TYPES = (pa.types.is_integer, pa.types.is_string)      # of the column's plain_type
_TEXT_TYPES = (pa.types.is_string, pa.types.is_binary)


def _uri(uri_root: str, path: str) -> str:
    return f"{uri_root.split('://', 1)[0]}://{path}" if storage.is_remote(uri_root) else path


def _footer(fs: FileSystem, path: str) -> pq.FileMetaData | str:
    """The footer, or why it cannot be read."""
    try:
        with fs.open_input_file(path) as f:
            return pq.ParquetFile(f).metadata
    except (OSError, pa.ArrowException) as e:
        return storage.reason(e)


@dataclass(frozen=True)
class Wanted:
    """The columns a plan checks in every footer."""
    id: str | None                # None: the input has no ids
    text: str
    keep: tuple[str, ...] = ()

    def typed(self) -> list[str]:
        """The columns that must have one type in every file."""
        return ([self.id] if self.id else []) + list(self.keep)


@dataclass(frozen=True)
class FooterSummary:
    """What the plan needs of one file's footer, made where it is read (a thread, or a Ray task), so
    that the driver gets O(row groups) per file rather than the footer."""
    path: str
    unreadable: str | None = None                       # why the footer does not read
    rows: int = 0
    row_groups: tuple[int, ...] = ()
    problems: tuple[str, ...] = ()                      # the file's column problems
    types: tuple[tuple[str, pa.DataType], ...] = ()     # (column, plain type) of Wanted.typed()


def _summary(fs: FileSystem, uri_root: str, path: str, wanted: Wanted) -> FooterSummary:
    footer = _footer(fs, path)
    if isinstance(footer, str):
        return FooterSummary(path, footer)
    schema = footer.schema.to_arrow_schema()
    problems = _column_problems(_uri(uri_root, path), schema, wanted.id, wanted.text, wanted.keep)
    types = () if problems else tuple((n, plain_type(schema.field(n).type)) for n in wanted.typed())
    return FooterSummary(path, None, footer.num_rows,
                         tuple(footer.row_group(g).num_rows for g in range(footer.num_row_groups)),
                         tuple(problems), types)


def read_footers(fs: FileSystem, uri_root: str, paths: list[str], wanted: Wanted) -> list[FooterSummary]:
    """The summaries of paths' footers, read in threads (a Ray task's body for a slice of a big input)."""
    with ThreadPoolExecutor(_IO_THREADS) as pool:
        return list(pool.map(lambda p: _summary(fs, uri_root, p, wanted), paths))


def _summaries(fs: FileSystem, uri_root: str, paths: list[str], wanted: Wanted,
               run: Mapper | None) -> list[FooterSummary]:
    """Every footer's summary, in paths' order: here, or by tasks of FOOTER_TASK_FILES files each."""
    if run is None or len(paths) <= FOOTER_TASK_FILES:
        return read_footers(fs, uri_root, paths, wanted)
    slices = [paths[i:i + FOOTER_TASK_FILES] for i in range(0, len(paths), FOOTER_TASK_FILES)]
    return [s for part in run(read_footers, [(fs, uri_root, p, wanted) for p in slices]) for s in part]


def _column_problems(uri: str, schema: pa.Schema, id_column: str | None, text_column: str,
                     keep: tuple[str, ...]) -> list[str]:
    """Missing columns, and id or text columns of a type scoring cannot use (kept columns: any type)."""
    problems = []
    checks = [(id_column, _ID_TYPES, "an integer or string")] if id_column is not None else []
    checks += [(text_column, _TEXT_TYPES, "a string or binary")] + [(k, (), "") for k in keep]
    for name, kinds, what in checks:
        if name not in schema.names:
            problems.append(f"{uri}: no column '{name}' (it has {schema.names})")
        elif kinds and not any(k(plain_type(schema.field(name).type)) for k in kinds):
            problems.append(f"{uri}: column '{name}' is {schema.field(name).type}, not {what}")
    return problems


def _type_problems(types: dict[str, dict[pa.DataType, str]]) -> list[str]:
    """types: {column: {plain type: first file of that type}}; a column must have one type in every
    file, or its values could not share the one schema of the output."""
    return [f"column '{name}' has different types across files: "
            + ", ".join(f"{t} (e.g. {u})" for t, u in seen.items()) for name, seen in types.items() if len(seen) > 1]


def _relative_name(root: str, path: str) -> str:
    """path's name relative to the input root; a one-file input's own base name."""
    return path[len(root):].strip("/") if path != root else path.rsplit("/", 1)[-1]


def _units(files: list[InputFile], unit_rows: int) -> list[Unit]:
    """Row groups, in file order, packed up to unit_rows per unit (a bigger row group is one unit);
    a file joins the unit before it only while that unit stays within PACK_ROWS. A unit's row
    groups of one file make one piece."""
    units: list[Unit] = []
    pieces: list[Piece] = []
    rows, pack_rows = 0, min(unit_rows, PACK_ROWS)
    for f_index, f in enumerate(files):
        start = 0
        for g, n in enumerate(f.row_groups):
            if n == 0:
                continue        # an empty row group (a file of no rows has one) is no work
            same_file = bool(pieces) and pieces[-1].file == f_index
            if pieces and rows + n > (unit_rows if same_file else pack_rows):
                units.append(Unit(len(units), tuple(pieces)))
                pieces, rows, same_file = [], 0, False
            if same_file:
                last = pieces[-1]
                pieces[-1] = Piece(f_index, last.row_groups + (g,), last.first_row, last.rows + n)
            else:
                pieces.append(Piece(f_index, (g,), start, n))
            rows, start = rows + n, start + n
    if pieces:
        units.append(Unit(len(units), tuple(pieces)))
    return units


def _list_files(uri: str) -> list[str]:
    """Every file under uri (or uri itself), skipping names that start with "_" or "." as pyarrow,
    Spark and Ray Data do; listed without opening any file."""
    missing = storage.missing_reason(uri)
    if missing:
        raise DataError(f"scoring input {uri}: {missing}")
    fs, root = storage.resolve(uri)
    if fs.get_file_info(root).type == pafs.FileType.File:
        return [root]
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    hidden = lambda p: any(part[:1] in "_." for part in p[len(root):].strip("/").split("/"))  # noqa: E731
    return sorted(i.path for i in infos if i.type == pafs.FileType.File and not hidden(i.path))


def plan_input(uri: str, id_column: str | None, text_column: str, unit_rows: int,
               skip_bad_files: bool = False, keep: tuple[str, ...] = (), run: Mapper | None = None,
               paths: list[str] | None = None) -> Plan:
    """Read every footer of the input and cut it into units; a DataError names every problem.
    id_column None: the input has no ids (score.py names its rows by file and row). keep: columns
    every file must have, each of one type in all of them. run: a map over Ray tasks, for the
    footers of an input of more than FOOTER_TASK_FILES files. paths: the files under uri to read
    (an Iceberg snapshot's data files), instead of every file listed there."""
    fs, root = storage.resolve(uri)
    paths = _list_files(uri) if paths is None else paths
    if not paths:
        raise DataError(f"scoring input {uri}: no files (names starting with '_' or '.' are skipped)")
    wanted = Wanted(id_column, text_column, keep)
    files, skipped, problems = [], [], []
    types: dict[str, dict[pa.DataType, str]] = {c: {} for c in wanted.typed()}
    for summary in _summaries(fs, uri, paths, wanted, run):
        file_uri = _uri(uri, summary.path)
        if summary.unreadable is not None:
            (skipped if skip_bad_files else problems).append(
                {"uri": file_uri, "reason": f"not readable as Parquet: {summary.unreadable}"} if skip_bad_files
                else f"{file_uri}: not readable as Parquet: {summary.unreadable}")
            continue
        problems += summary.problems
        if not summary.problems:
            for name, plain in summary.types:
                types[name].setdefault(plain, file_uri)
            files.append(InputFile(file_uri, summary.rows, summary.row_groups, _relative_name(root, summary.path)))
    _refuse(uri, problems + _type_problems(types))
    kept = pa.schema([pa.field(k, next(iter(types[k]))) for k in keep if types[k]])
    return Plan(files, _units(files, unit_rows), unit_rows, skipped, kept)


def _refuse(uri: str, problems: list[str]) -> None:
    """One DataError naming every problem (the first 20) of the input, if any."""
    if len(problems) == 1:
        raise DataError(f"scoring input {uri}: {problems[0]}")
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise DataError(f"scoring input {uri}: {len(problems)} problem(s):\n  " + "\n  ".join(shown))


def row_key(file: int | np.ndarray, rows: np.ndarray | int) -> np.ndarray:
    """(file, row) as one int64 key (file: index into Plan.files); keys sort in file, then row order."""
    return np.asarray(rows, dtype=np.int64) + (np.asarray(file, dtype=np.int64) << 40)

