"""The id pass (textcnn.scoring.ids) run as plain functions, without Ray, against a Python reference."""

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from textcnn.scoring import ids
from textcnn.scoring.plan import plan_input, row_key

pytestmark = pytest.mark.unit


def serial(fn, args):
    return [fn(*a) for a in args]


def run_pass(plan, folder):
    """The pass as score.py runs it, on the builtin map: ({unit: keys}, unreadable)."""
    fs = pafs.LocalFileSystem()
    dups = str(folder / "dups")
    bad = ids.duplicate_pass(plan, "id", fs, fs, str(folder / "scratch"), dups, serial)
    return {u.index: k for u in plan.units if len(k := ids.unit_repeats(fs, dups, u.index))}, bad


def _reference(files):
    seen, expected = set(), []
    for f, values in enumerate(files):
        for row, i in enumerate(values):
            if i is not None and i in seen:
                expected.append(int(row_key(f, row)))
            seen.add(i)
    return expected


@pytest.mark.parametrize("kind", ["string", "int64", "large_string"])
def test_the_partitioned_pass_matches_a_reference(tmp_path, monkeypatch, kind):
    rng = np.random.default_rng(7)
    sizes = [int(rng.integers(0, 60)) for _ in range(40)] + [200]         # many files, one empty maybe
    files = [[None if rng.random() < 0.1 else int(rng.integers(0, 300)) for _ in range(n)] for n in sizes]
    arrow_type = {"string": pa.string(), "int64": pa.int64(), "large_string": pa.large_string()}[kind]
    (tmp_path / "in").mkdir()
    for f, values in enumerate(files):
        column = pa.array([None if i is None else (i if kind == "int64" else f"id-{i}" * (1 + i % 3))
                           for i in values], arrow_type)
        texts = pa.array(["t"] * len(values), pa.string())
        pq.write_table(pa.table({"id": column, "text": texts}), tmp_path / "in" / f"p{f:03d}.parquet",
                       row_group_size=17)
    monkeypatch.setattr(ids, "PART_ROWS", 97)          # several partitions, read tasks and unit ranges
    monkeypatch.setattr(ids, "TASK_ROWS", 150)
    plan = plan_input(str(tmp_path / "in"), "id", "text", unit_rows=40)
    dups, bad = run_pass(plan, tmp_path / "out")
    expected = _reference(files)
    assert bad == {} and len(expected) > 500 and ids.partitions(plan.rows) > 10
    assert sorted(k for keys in dups.values() for k in keys.tolist()) == expected
    for unit in plan.units:                                      # each key is with its own unit
        mine = {int(row_key(p.file, p.first_row + r)) for p in unit.pieces for r in range(p.rows)}
        assert set(dups.get(unit.index, np.array([], np.int64)).tolist()) == mine & set(expected)


def test_hashes_are_the_same_for_equal_ids_and_spread_over_partitions():
    strings = pa.array([f"user-{i:010d}-suffix" for i in range(20_000)] + ["", "a", "é"])
    parts = ids.partition_of(strings, 16)
    assert np.bincount(parts, minlength=16).min() > 20_000 / 16 * 0.8
    again = ids.partition_of(pa.concat_arrays([strings.slice(5), strings.slice(0, 5)]), 16)
    assert np.concatenate([again[-5:], again[:-5]]).tolist() == parts.tolist()
    as_large = ids.partition_of(strings.cast(pa.large_string()), 16)
    assert as_large.tolist() == parts.tolist()
    numbers = ids.partition_of(pa.array(np.arange(10_000) * 1024, pa.int64()), 7)
    assert np.bincount(numbers, minlength=7).min() > 10_000 / 7 * 0.8


def test_a_file_whose_ids_do_not_read_is_named_and_nothing_is_staged(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a", "b"):
        pq.write_table(pa.table({"id": ["x", "y"], "text": ["t", "t"]}), tmp_path / "in" / f"{name}.parquet")
    plan = plan_input(str(tmp_path / "in"), "id", "text", unit_rows=100)
    (tmp_path / "in" / "b.parquet").unlink()
    dups, bad = run_pass(plan, tmp_path / "out")
    assert list(bad) == [str(tmp_path / "in" / "b.parquet")] and "ids not readable" in bad[plan.files[1].uri]
    assert dups == {} and not (tmp_path / "out" / "dups").exists()


def test_scored_twice_counts_repeats_and_nulls(tmp_path):
    fs = pafs.LocalFileSystem()
    files = []
    for f, values in enumerate([["a", "b", None], ["c", "a"], ["a", None, "d", "c"]]):
        pq.write_table(pa.table({"id": pa.array(values, pa.string())}), tmp_path / f"s{f}.parquet")
        files.append((str(tmp_path / f"s{f}.parquet"), len(values)))
    assert ids.scored_twice(fs, files, "id", str(tmp_path / "check"), serial) == (3, 2)
