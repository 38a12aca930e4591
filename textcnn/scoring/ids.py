"""The id pass: duplicate ids found by the cluster, not the driver. Ray-free task bodies and their
driver-side orchestration; the caller passes the map that runs the tasks (runtime.map_tasks on a
cluster, the builtin map in tests).

    1. read: each task reads the id column of a run of files, hashes each non-null id into one of
       P partitions and writes (id, key) per partition: <scratch>/part-<p>/<task>.parquet
       (key = plan.row_key(file, row), which sorts in file-then-row order);
    2. repeats: one task per partition sorts its ids (stably, so equal ids stay in key order) and
       keeps the keys of every id after its first occurrence, split by range of units:
       <scratch>/range-<r>/<p>.parquet;
    3. units: one task per range of units gathers them into one file per unit that has any:
       <dups>/u-<unit>.parquet, which that unit's read task loads (stages.read_unit).

The driver sends out O(files + units) and gets back O(files) (the files whose ids do not read),
never an id or a row position. Every id of a partition is held by one task: P grows with the rows.
The same read and partition steps count the ids scored twice at reconcile (scored_twice).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyarrow.fs import FileSystem

from textcnn import storage
from textcnn.core.rows import as_plain
from textcnn.scoring.plan import Mapper, Plan, row_key

log = logging.getLogger(__name__)

PART_ROWS = 2_000_000      # ids per partition: a repeats task holds them, ~30 bytes each with its sort
TASK_ROWS = 2_000_000      # ids read per read task (whole files, so a bigger file is a task alone)
MAX_PARTS = 4096
_CHUNK = 1 << 16           # strings hashed at a time: bounds the per-byte temporaries
_PRIME = np.uint64(0x100000001B3)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@dataclass(frozen=True)
class ReadTask:
    """One read task: files as (index naming them in keys, uri), in key order."""
    task: int
    files: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class ReadResult:
    unreadable: dict[str, str] = field(default_factory=dict)     # {uri: reason}
    nulls: int = 0


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit, so h % P spreads evenly."""
    h = h ^ (h >> np.uint64(30))
    h = h * _MIX[0]
    h = h ^ (h >> np.uint64(27))
    h = h * _MIX[1]
    return h ^ (h >> np.uint64(31))


def _string_hash(ids: pa.Array) -> np.ndarray:
    """(N,) uint64 of a string/binary array without nulls: a polynomial over its bytes, mixed; the
    same in every process (Python's hash() is salted per process), and without a Python object per id."""
    out = np.empty(len(ids), np.uint64)
    for start in range(0, len(ids), _CHUNK):
        chunk = ids.slice(start, _CHUNK)
        width = np.int64 if pa.types.is_large_string(ids.type) or pa.types.is_large_binary(ids.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], width)[chunk.offset:chunk.offset + len(chunk) + 1].astype(np.int64)
        lengths = np.diff(offsets)
        data = np.frombuffer(chunk.buffers()[2], np.uint8)[offsets[0]:offsets[-1]].astype(np.uint64)
        within = np.arange(len(data)) - np.repeat(offsets[:-1] - offsets[0], lengths)
        powers = np.cumprod(np.full(int(lengths.max(initial=0)) + 1, _PRIME, np.uint64)) if len(data) else data
        summed = np.concatenate([np.zeros(1, np.uint64), np.cumsum(data * powers[within], dtype=np.uint64)])
        spans = offsets - offsets[0]
        out[start:start + len(chunk)] = _mix(summed[spans[1:]] - summed[spans[:-1]] + lengths.astype(np.uint64))
    return out


def partition_of(ids: pa.Array, parts: int) -> np.ndarray:
    """(N,) int64 partition of each id (no nulls): equal ids, equal partitions, in every process."""
    if pa.types.is_integer(ids.type):
        h = _mix(ids.cast(pa.int64()).to_numpy().view(np.uint64))
    else:
        h = _string_hash(ids)
    return (h % np.uint64(parts)).astype(np.int64)


def _part_dir(scratch: str, part: int) -> str:
    return storage.join(scratch, f"part-{part:05d}")


def _range_dir(scratch: str, r: int) -> str:
    return storage.join(scratch, f"range-{r:05d}")


def unit_file(dups_dir: str, unit: int) -> str:
    """Where the id pass puts a unit's duplicate rows (keys, sorted); no file: the unit has none."""
    return storage.join(dups_dir, f"u-{unit:06d}.parquet")


def _write(fs: FileSystem, uri: str, table: pa.Table) -> None:
    path = storage.path_of(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    pq.write_table(table, path, filesystem=fs)


def _file_ids(fs: FileSystem, uri: str, id_column: str) -> pa.Array | str:
    """The file's ids, or why they cannot be read (a corrupt page behind a sound footer)."""
    try:
        with fs.open_input_file(storage.path_of(uri)) as f:
            return as_plain(pq.read_table(f, columns=[id_column]).column(0).combine_chunks())
    except (OSError, pa.ArrowException) as e:
        return storage.reason(e)


def read_partitions(in_fs: FileSystem, out_fs: FileSystem, task: ReadTask, id_column: str, parts: int,
                    scratch: str) -> ReadResult:
    """Step 1: the task's files' non-null ids with their keys, split by partition into the scratch
    (on out_fs). Nothing is written when a file's ids do not read: the pass stops there."""
    tables, unreadable, nulls = [], {}, 0
    for index, uri in task.files:
        ids = _file_ids(in_fs, uri, id_column)
        if isinstance(ids, str):
            unreadable[uri] = f"ids not readable: {ids}"
            continue
        keys = row_key(index, np.arange(len(ids), dtype=np.int64))
        valid = ids.is_valid().to_numpy(zero_copy_only=False)
        nulls += len(ids) - int(valid.sum())
        tables.append(pa.table({"id": ids.filter(pa.array(valid)), "key": keys[valid]}))
    if tables and not unreadable:
        _write_split(out_fs, pa.concat_tables(tables).combine_chunks(), parts,
                     lambda p: storage.join(_part_dir(scratch, p), f"{task.task:06d}.parquet"))
    return ReadResult(unreadable, nulls)


def _write_split(fs: FileSystem, table: pa.Table, parts: int, uri_of: Callable[[int], str],
                 by: np.ndarray | None = None) -> None:
    """table's rows split by partition (of its ids, or `by`), one file per non-empty part; a stable
    sort by part keeps each part's rows in their order."""
    part = partition_of(table["id"].combine_chunks(), parts) if by is None else by
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    for p in range(parts):
        if bounds[p + 1] > bounds[p]:
            _write(fs, uri_of(p), table.take(pa.array(order[bounds[p]:bounds[p + 1]])))


def _read_dir(fs: FileSystem, uri: str, columns: list[str]) -> pa.Table | None:
    """Every Parquet file in the folder, in name order (the order the tasks that wrote them ran in)."""
    infos = fs.get_file_info(pafs.FileSelector(storage.path_of(uri), allow_not_found=True))
    paths = sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(".parquet"))
    if not paths:
        return None
    return pa.concat_tables(pq.read_table(p, columns=columns, filesystem=fs) for p in paths)


def _repeated_keys(table: pa.Table) -> np.ndarray:
    """(D,) sorted keys of the rows whose id occurred at a smaller key. Rows arrive in key order
    (tasks in file order), and a stable sort by id keeps that order among equal ids."""
    if table is None or table.num_rows < 2:
        return np.empty(0, np.int64)
    ids = table["id"].combine_chunks()
    order = pc.sort_indices(ids)
    sorted_ids = ids.take(order)
    same = pc.equal(sorted_ids[1:], sorted_ids[:-1]).to_numpy(zero_copy_only=False)
    keys = table["key"].to_numpy()
    return np.sort(keys[order.to_numpy()[1:][same]])


def repeats_by_range(fs: FileSystem, scratch: str, part: int, range_starts: np.ndarray) -> int:
    """Step 2: the partition's repeated keys, split by range of units (range_starts: each range's
    first key, ascending); how many."""
    keys = _repeated_keys(_read_dir(fs, _part_dir(scratch, part), ["id", "key"]))
    ranges = np.searchsorted(range_starts, keys, side="right") - 1
    _write_split(fs, pa.table({"key": keys}), len(range_starts),
                 lambda r: storage.join(_range_dir(scratch, r), f"{part:05d}.parquet"), by=ranges)
    return len(keys)


def units_of_range(fs: FileSystem, scratch: str, r: int, unit_starts: np.ndarray, dups_dir: str) -> int:
    """Step 3: the range's repeated keys gathered by unit (unit_starts: each unit's first key),
    one file per unit that has any; how many units."""
    table = _read_dir(fs, _range_dir(scratch, r), ["key"])
    if table is None:
        return 0
    keys = np.sort(table["key"].to_numpy())
    units = np.searchsorted(unit_starts, keys, side="right") - 1
    found, first = np.unique(units, return_index=True)
    for unit, start, end in zip(found.tolist(), first.tolist(), first[1:].tolist() + [len(keys)]):
        _write(fs, unit_file(dups_dir, unit), pa.table({"key": keys[start:end]}))
    return len(found)


def unit_repeats(fs: FileSystem, dups_dir: str, unit: int) -> np.ndarray:
    """(D,) sorted keys of the unit's rows whose id occurred earlier; a missing file: none."""
    try:
        return pq.read_table(storage.path_of(unit_file(dups_dir, unit)), filesystem=fs).column("key").to_numpy()
    except FileNotFoundError:
        return np.empty(0, np.int64)


def count_repeats(fs: FileSystem, scratch: str, part: int) -> int:
    """Ids of the partition beyond each one's first occurrence."""
    table = _read_dir(fs, _part_dir(scratch, part), ["id"])
    return 0 if table is None else table.num_rows - pc.count_distinct(table["id"]).as_py()


def partitions(rows: int) -> int:
    return max(1, min(MAX_PARTS, math.ceil(rows / PART_ROWS)))


def read_tasks(files: Sequence[tuple[str, int]]) -> list[ReadTask]:
    """Files ((uri, rows), in key order) packed into read tasks of up to TASK_ROWS rows."""
    tasks: list[ReadTask] = []
    batch: list[tuple[int, str]] = []
    rows = 0
    for index, (uri, n) in enumerate(files):
        if batch and rows + n > TASK_ROWS:
            tasks.append(ReadTask(len(tasks), tuple(batch)))
            batch, rows = [], 0
        batch.append((index, uri))
        rows += n
    if batch:
        tasks.append(ReadTask(len(tasks), tuple(batch)))
    return tasks


def unit_starts(plan: Plan) -> np.ndarray:
    """(U,) each unit's first key: units cover consecutive spans of keys, in index order."""
    return np.array([row_key(u.pieces[0].file, u.pieces[0].first_row) for u in plan.units], np.int64)


def _merge_unreadable(results: Iterable[ReadResult]) -> dict[str, str]:
    return {uri: why for r in results for uri, why in r.unreadable.items()}


def duplicate_pass(plan: Plan, id_column: str, in_fs: FileSystem, out_fs: FileSystem, scratch: str,
                   dups_dir: str, run: Mapper) -> dict[str, str]:
    """Steps 1-3 over the plan's files: unit_file(dups_dir, u) for each unit with duplicate rows.
    The files whose ids do not read ({uri: reason}), if any; then nothing is written to dups_dir."""
    parts, starts = partitions(plan.rows), unit_starts(plan)
    tasks = read_tasks([(f.uri, f.rows) for f in plan.files])
    clock = time.time()
    unreadable = _merge_unreadable(run(read_partitions, [(in_fs, out_fs, t, id_column, parts, scratch) for t in tasks]))
    if unreadable or not len(starts):
        return unreadable
    range_starts = starts[::math.ceil(len(starts) / parts)]
    read, clock = time.time() - clock, time.time()
    found = sum(run(repeats_by_range, [(out_fs, scratch, p, range_starts) for p in range(parts)]))
    repeats, clock = time.time() - clock, time.time()
    units = sum(run(units_of_range, [(out_fs, scratch, r, starts, dups_dir) for r in range(len(range_starts))]))
    log.info("id pass: %d read task(s), %d partition(s): %d duplicate row(s) in %d unit(s); read %.1f s, "
             "repeats %.1f s, by unit %.1f s", len(tasks), parts, found, units, read, repeats, time.time() - clock)
    return {}


def scored_twice(fs: FileSystem, files: Sequence[tuple[str, int]], id_column: str, scratch: str,
                 run: Mapper) -> tuple[int, int]:
    """(ids scored more than once, null ids) over the score files ((uri, rows)), counted by partition
    tasks: the ids stay in the cluster."""
    parts = partitions(sum(n for _, n in files))
    tasks = read_tasks(files)
    results = run(read_partitions, [(fs, fs, t, id_column, parts, scratch) for t in tasks])
    unreadable = _merge_unreadable(results)
    if unreadable:
        raise storage.StorageError(f"score files do not read back: {unreadable}")
    return sum(run(count_repeats, [(fs, scratch, p) for p in range(parts)])), sum(r.nulls for r in results)
