"""The input plan (footers, units, duplicate ids) and the run contract (lock, staging), without Ray."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import astuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.unit.test_ids import run_pass
from textcnn.core.rows import DataError
from textcnn.scoring import ids as id_pass
from textcnn.scoring import plan as plan_module
from textcnn.scoring import runs
from textcnn.scoring.drift import Distributions
from textcnn.scoring.plan import plan_input, row_key
from textcnn.scoring.records import (
    IdPassDone,
    InputSummary,
    Manifest,
    ModelRef,
    OutputFile,
    OutputSummary,
    ResumeSummary,
    StagedPart,
    UnitOutputs,
)

pytestmark = pytest.mark.unit


@pytest.fixture
def duplicate_rows(tmp_path):
    """The id pass (ids.py) on the builtin map: ({unit: keys}, unreadable files), as the driver-side
    duplicate_rows(plan, id_column) gave them."""
    calls = iter(range(1000))
    # under a name starting with "_": a plan of tmp_path made afterwards does not list it as input
    return lambda plan, id_column: run_pass(plan, tmp_path / f"_pass-{next(calls)}")


def _write(path, ids, texts=None, row_group_size=None):
    texts = texts if texts is not None else ["a text"] * len(ids)
    pq.write_table(pa.table({"id": ids, "text": texts}), path, row_group_size=row_group_size)


def test_units_pack_row_groups_and_duplicates_keep_the_first_occurrence(tmp_path, duplicate_rows):
    _write(tmp_path / "a.parquet", [f"a{i}" for i in range(10)], row_group_size=3)   # groups 3,3,3,1
    _write(tmp_path / "b.parquet", ["b0", "a2", "b2", "a2", None, None])
    plan = plan_input(str(tmp_path), "id", "text", unit_rows=6)
    assert [[astuple(p) for p in u.pieces] for u in plan.units] == \
        [[(0, (0, 1), 0, 6)], [(0, (2, 3), 6, 4)], [(1, (0,), 0, 6)]]       # (file, row groups, first row, rows)
    assert [u.rows for u in plan.units] == [6, 4, 6]
    assert plan.rows == 16 and len(plan.fingerprint()) == 16
    dups, bad = duplicate_rows(plan, "id")
    assert list(dups) == [2] and dups[2].tolist() == row_key(1, np.array([1, 3])).tolist()
    assert bad == {}                                                        # a2 is first seen in a.parquet


@pytest.mark.parametrize("kind", ["string", "int64"])
def test_duplicates_found_slice_by_slice_match_a_reference(tmp_path, monkeypatch, kind, duplicate_rows):
    rng = np.random.default_rng(3)
    files = [[None if rng.random() < 0.1 else int(rng.integers(0, 40)) for _ in range(n)] for n in (30, 1, 25, 17)]
    for f, ids in enumerate(files):
        _write(tmp_path / f"p{f}.parquet", pa.array([None if i is None else (f"id{i}" if kind == "string" else i)
                                                     for i in ids], pa.string() if kind == "string" else pa.int64()))
    seen, expected = set(), []
    for f, ids in enumerate(files):
        for row, i in enumerate(ids):
            if i is not None and i in seen:
                expected.append(int(row_key(f, row)))
            seen.add(i)
    monkeypatch.setattr(id_pass, "PART_ROWS", 7)      # many partitions, runs of equal ids across read tasks
    monkeypatch.setattr(id_pass, "TASK_ROWS", 7)
    plan = plan_input(str(tmp_path), "id", "text", unit_rows=10)
    dups, bad = duplicate_rows(plan, "id")
    assert bad == {} and len(expected) > 20
    assert sorted(k for keys in dups.values() for k in keys.tolist()) == expected
    for unit in plan.units:                                       # each key is grouped with its own unit
        mine = {int(row_key(p.file, p.first_row + r)) for p in unit.pieces for r in range(p.rows)}
        assert set(dups.get(unit.index, np.array([], np.int64)).tolist()) == mine & set(expected)


def test_the_plan_reads_footers_only_and_the_id_pass_reads_the_ids(tmp_path, duplicate_rows):
    os.makedirs(tmp_path / "in")
    _write(tmp_path / "in" / "a.parquet", ["a0", "a1"])
    _write(tmp_path / "in" / "b.parquet", ["b0", "a1", "b2"])
    plan = plan_input(str(tmp_path / "in"), "id", "text", unit_rows=100)
    assert not hasattr(plan, "ids")                      # the driver holds no id
    dups, bad = duplicate_rows(plan, "id")
    assert bad == {} and dups[0].tolist() == row_key(1, np.array([1])).tolist()
    for name in ("a.parquet", "b.parquet"):
        os.remove(tmp_path / "in" / name)                # the pass opens the files again, in its tasks
    _, bad = duplicate_rows(plan, "id")
    assert sorted(bad) == [str(tmp_path / "in" / "a.parquet"), str(tmp_path / "in" / "b.parquet")]


def test_small_files_share_units_and_their_duplicates_stay_with_their_file(tmp_path, monkeypatch, duplicate_rows):
    for f in range(5):                                                      # 3 rows each: 15 rows
        _write(tmp_path / f"p{f}.parquet", [f"f{f}-{i}" for i in range(3)] if f != 3 else ["f0-1", "x", "f3-2"])
    _write(tmp_path / "big.parquet", [f"b{i}" for i in range(9)], row_group_size=4)   # groups 4, 4, 1
    plan = plan_input(str(tmp_path), "id", "text", unit_rows=8)
    assert [f.uri.rsplit("/", 1)[1] for f in plan.files] == ["big.parquet"] + [f"p{f}.parquet" for f in range(5)]
    assert [[astuple(p) for p in u.pieces] for u in plan.units] == [
        [(0, (0, 1), 0, 8)],                                                # big's first two groups
        [(0, (2,), 8, 1), (1, (0,), 0, 3), (2, (0,), 0, 3)],                  # its last group + two small files
        [(3, (0,), 0, 3), (4, (0,), 0, 3)],
        [(5, (0,), 0, 3)]]
    assert [u.rows for u in plan.units] == [8, 7, 6, 3] and sum(u.rows for u in plan.units) == plan.rows == 24
    dups, _ = duplicate_rows(plan, "id")
    assert {u: k.tolist() for u, k in dups.items()} == {2: row_key(4, np.array([0])).tolist()}   # p3's f0-1
    other = plan_input(str(tmp_path), "id", "text", unit_rows=9)            # cut otherwise: another plan
    assert other.fingerprint() != plan.fingerprint()
    monkeypatch.setattr(plan_module, "PACK_ROWS", 6)     # files join a unit only up to PACK_ROWS rows,
    packed = plan_input(str(tmp_path), "id", "text", unit_rows=8)           # a file's own groups up to unit_rows
    assert [u.rows for u in packed.units] == [8, 4, 6, 6]


def test_every_input_problem_is_named_at_once(tmp_path):
    _write(tmp_path / "ok.parquet", ["x"])
    _write(tmp_path / "intid.parquet", [7])
    pq.write_table(pa.table({"id": ["x"], "body": ["t"]}), tmp_path / "nocol.parquet")
    pq.write_table(pa.table({"id": [1.5], "text": ["t"]}), tmp_path / "floatid.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError) as e:
        plan_input(str(tmp_path), "id", "text", 100)
    message = str(e.value)
    assert "4 problem(s)" in message
    for needle in ("nocol.parquet: no column 'text'", "floatid.parquet: column 'id' is double",
                   "corrupt.parquet: not readable as Parquet", "column 'id' has different types"):
        assert needle in message
    for name in ("nocol", "floatid", "intid"):
        os.remove(tmp_path / f"{name}.parquet")
    plan = plan_input(str(tmp_path), "id", "text", 100, skip_bad_files=True)
    assert [f.uri for f in plan.files] == [str(tmp_path / "ok.parquet")]
    assert plan.skipped[0]["uri"] == str(tmp_path / "corrupt.parquet")


def test_a_live_lock_refuses_and_a_dead_holders_lock_is_taken_over(tmp_path):
    uri = str(tmp_path / "_locks" / "run_date=2026-01-01.json")
    with runs.RunLock(uri, ttl=60):
        with pytest.raises(runs.LockedError, match="held by a live run"):
            runs.RunLock(uri, ttl=60).acquire()
    assert not os.path.exists(uri)                                  # released
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.makedirs(os.path.dirname(uri), exist_ok=True)
    with open(uri, "w") as f:                                       # left by a killed driver on this host
        json.dump({"token": "t", "host": os.uname().nodename, "pid": int(dead.stdout), "heartbeat": time.time()}, f)
    with runs.RunLock(uri, ttl=60) as lock:
        assert json.load(open(uri))["token"] == lock.token


def test_staging_keeps_done_units_of_the_same_plan_only(tmp_path):
    staging = runs.Staging(runs.Layout(str(tmp_path), "run=x"))
    assert staging.start({"input": "p1"}) == {}
    staging.commit_unit(0, UnitOutputs(rows=5))
    os.makedirs(staging.layout.unit_dir(1))                         # a unit cut off before its _DONE
    (tmp_path / "_staging" / "run=x" / "units" / "u-000001" / "score-0.parquet").write_bytes(b"x")
    assert runs.Staging(staging.layout).start({"input": "p1"}) == {0: UnitOutputs(rows=5)}
    assert not os.path.exists(staging.layout.unit_dir(1))
    assert runs.Staging(staging.layout).start({"input": "p2"}) == {}    # other input: start over
    assert not os.path.exists(staging.layout.unit_dir(0))


def test_the_id_pass_record_reads_back_typed_and_a_cut_off_one_reads_as_unfinished(tmp_path):
    staging = runs.Staging(runs.Layout(str(tmp_path), "run=x"))
    staging.start({"input": "p1"})
    assert staging.dups_record() is None
    os.makedirs(staging.layout.dups_dir)
    done = IdPassDone("p1", {"s3://b/in/bad.parquet": "ids do not read"})
    staging.commit_dups(done)
    assert runs.Staging(staging.layout).dups_record() == done
    (tmp_path / "_staging" / "run=x" / "dups" / runs.DONE).write_text('{"input": "p1", "unrea')   # cut off
    assert staging.dups_record() is None


def test_reconcile_refuses_output_with_an_id_scored_twice(tmp_path):
    from types import SimpleNamespace

    from textcnn.scoring.run import ReconcileError, _reconcile
    _write(tmp_path / "in.parquet", ["a", "b", "c", "d"])
    plan = plan_input(str(tmp_path / "in.parquet"), "id", "text", unit_rows=2)
    for name, ids in (("s0", ["a", "b"]), ("s1", ["c", "d"]), ("s2", ["b", "a"])):
        _write(tmp_path / f"{name}.parquet", ids)

    def done(*names):                                     # one unit: the 4 input rows are one small file
        return {0: UnitOutputs(4, [StagedPart(runs.SCORES, str(tmp_path / f"{n}.parquet"), 2 * i, 2)
                                   for i, n in enumerate(names)])}
    config = SimpleNamespace(output=str(tmp_path), id_column="id")
    layout, serial = runs.Layout(str(tmp_path / "out"), "run=x"), lambda fn, args: [fn(*a) for a in args]
    _reconcile(plan, done("s0", "s1"), config, layout, serial)      # every id once: accepted
    with pytest.raises(ReconcileError, match="2 id\\(s\\) scored more than once, 0 null"):
        _reconcile(plan, done("s0", "s2"), config, layout, serial)  # a and b twice
    with pytest.raises(ReconcileError, match="1 unit\\(s\\) short"):
        _reconcile(plan, {0: dataclasses.replace(done("s0")[0], rows=2)}, config, layout, serial)


def _staged_run(out, run_key, ids_by_part):
    """A run staged as score() leaves it before its commit: a file per part, plan.json, and the Commit."""
    layout = runs.Layout(str(out), run_key)
    fingerprint = {"input": run_key}
    runs.Staging(layout).start(fingerprint)
    moves = []
    for unit, ids in enumerate(ids_by_part):
        staged = os.path.join(layout.unit_dir(unit), "score-000000000000.parquet")
        os.makedirs(os.path.dirname(staged))
        _write(staged, ids)
        moves.append((staged, layout.part(runs.SCORES, unit, 0)))
    files = [OutputFile(p, len(i)) for (_, p), i in zip(moves, ids_by_part)]
    return layout, fingerprint, runs.Commit(tuple(moves), _manifest(run_key, files))


def _manifest(run_key: str, files: list[OutputFile]) -> Manifest:
    rows = sum(f.rows for f in files)
    return Manifest(run_key, run_key.split("=")[1], "a1", "t0", "t1", 1.0, float(rows), ModelRef("m", "v", "h"), {},
                    InputSummary("in", rows, [], [], []), OutputSummary(rows, 0, {}, files, []),
                    ResumeSummary(len(files), 0, 0), Distributions({}, []))


def test_a_commit_cut_off_after_any_step_is_finished_by_the_rerun(tmp_path):
    """The commit is killed after each of its steps in turn (a rerun of a committed date, replacing
    its files); the next attempt finishes it, and the date then holds every new row once, no old row.
    (Cut after its last step, the commit is whole: nothing is left to finish.)"""
    from textcnn.scoring.run import _finish_cut_off_commit
    cut, steps = 0, [None]
    while cut <= len(steps):
        out = tmp_path / f"cut{cut}"
        old, _, old_commit = _staged_run(out, "run_date=2026-12-06", [["o0"], ["o1"], ["o2"], ["o3"]])
        runs.publish(old, old_commit)                             # the night as first committed
        layout, fingerprint, commit = _staged_run(out, "run_date=2026-12-06", [["n0", "n1"], ["n2"], ["n3", "n4"]])
        steps = runs.commit_steps(layout, commit)
        runs.storage.write_text(os.path.join(layout.staging, runs.COMMIT), commit.to_json())
        for step in steps[:cut]:
            step()
        finished = _finish_cut_off_commit(layout, fingerprint)
        assert finished == (commit.manifest if cut < len(steps) else None), cut
        assert runs.read_manifest(layout) == commit.manifest and not os.path.exists(layout.staging)
        on_disk = pq.ParquetDataset(str(out / runs.SCORES)).read().column("id").to_pylist()
        assert sorted(on_disk) == ["n0", "n1", "n2", "n3", "n4"], cut
        assert sorted(runs.read_run(layout).column("id").to_pylist()) == sorted(on_disk)
        cut += 1
    assert cut == len(steps) + 1 == 9


def test_drift_skips_an_unreadable_earlier_manifest(tmp_path, caplog):
    good = _manifest("run_date=2026-12-04", [])
    for key, text in (("run_date=2026-12-04", json.dumps(good.to_dict())), ("run_date=2026-12-05", '{"run": "junk"}')):
        os.makedirs(tmp_path / "_runs" / key)
        (tmp_path / "_runs" / key / "_SUCCESS").write_text(text)
    assert runs.previous_manifest(runs.Layout(str(tmp_path), "run_date=2026-12-06")) == good
    assert "run_date=2026-12-05" in caplog.text and "not a textcnn manifest" in caplog.text


def test_footers_of_many_files_are_read_by_tasks_to_the_same_plan(tmp_path, monkeypatch):
    calls = []

    def tasks(fn, args):                          # stands in for runtime.map_tasks, without Ray
        calls.append(len(args))
        return [fn(*a) for a in args]
    for f in range(7):
        _write(tmp_path / f"p{f}.parquet", [f"{f}-{i}" for i in range(f + 1)], row_group_size=3)
    monkeypatch.setattr(plan_module, "FOOTER_TASK_FILES", 2)
    by_tasks = plan_input(str(tmp_path), "id", "text", unit_rows=4, run=tasks)
    assert calls == [4]                                                     # 7 files, 2 a task
    here = plan_input(str(tmp_path), "id", "text", unit_rows=4)
    assert by_tasks == here and by_tasks.fingerprint() == here.fingerprint()
    pq.write_table(pa.table({"id": [1.5], "text": ["t"]}), tmp_path / "p7.parquet")
    (tmp_path / "p8.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DataError, match="2 problem"):
        plan_input(str(tmp_path), "id", "text", 4, run=tasks)
