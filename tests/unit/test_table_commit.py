"""The commit into Iceberg tables (scoring/tables.py), without Ray: cut off after each of its steps and
finished by the next attempt, each table holds the night once and each attempt's snapshot once."""

import dataclasses
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from textcnn import runtime
from textcnn.scoring import runs, tables
from textcnn.scoring.drift import Distributions
from textcnn.scoring.records import (
    DEAD_LETTERS,
    SCORES,
    InputSummary,
    Manifest,
    ModelRef,
    OutputSummary,
    ResumeSummary,
)
from textcnn.scoring.run import _finish_cut_off_commit

pytestmark = pytest.mark.unit

RUN, TABLE = "run_date=2026-12-06", "nightly.scores"


@pytest.fixture(autouse=True)
def no_ray(monkeypatch, tmp_path):
    """The data-file tasks run in this process; no ~/.pyiceberg.yaml of the machine is read."""
    monkeypatch.setattr(runtime, "map_tasks", lambda fn, args: [fn(*a) for a in args])
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))


def _staged(out, attempt: str, scores: list[list[str]], dead: list[str]):
    """A night staged as score() leaves it before its commit, committed to TABLE: its Commit."""
    layout = runs.Layout(str(out), RUN)
    runs.Staging(layout).start({"input": RUN})
    moves = []
    for unit, ids in enumerate(scores + ([dead] if dead else [])):
        dataset = DEAD_LETTERS if unit == len(scores) else SCORES
        staged = layout.staged_part(dataset, unit, 0)
        os.makedirs(os.path.dirname(staged), exist_ok=True)
        pq.write_table(pa.table({"id": ids, "run_id": ["2026-12-06"] * len(ids)}), staged)
        moves.append((staged, layout.part(dataset, unit, 0)))
    rows = sum(map(len, scores))
    manifest = Manifest(RUN, "2026-12-06", attempt, "t0", "t1", 1.0, 1.0, ModelRef("m", "v", "h"),
                        {"output_table": TABLE, "catalog": "default"}, InputSummary("in", rows + len(dead), [], [], []),
                        OutputSummary(rows, len(dead), {}, [], []), ResumeSummary(len(scores), 0, 0),
                        Distributions({}, []))
    return layout, runs.Commit(tuple(moves), manifest)


def _ids(catalog, name: str) -> list[str]:
    return sorted(catalog.load_table(name).scan().to_arrow()["id"].to_pylist())


def test_a_table_commit_cut_off_after_any_step_is_finished_by_the_rerun_writing_each_snapshot_once(tmp_path):
    cut, steps = 0, [None]
    while cut <= len(steps):
        out = tmp_path / f"cut{cut}"
        old_layout, old = _staged(out, "a1", [["o0"], ["o1", "o2"]], ["d0"])
        runs.publish(old_layout, old, tables.commit_steps)                  # the night as first committed
        layout, commit = _staged(out, "a2", [["n0", "n1"], ["n2"]], ["e0", "e1"])
        steps = tables.commit_steps(layout, commit)
        runs.storage.write_text(os.path.join(layout.staging, runs.COMMIT), commit.to_json())
        for step in steps[:cut]:
            step()
        finished = _finish_cut_off_commit(layout, {"input": RUN})
        assert (finished is None) == (cut == len(steps)), cut
        catalog = tables.load("default", str(out))
        assert _ids(catalog, TABLE) == ["n0", "n1", "n2"] and _ids(catalog, TABLE + "_dead_letters") == ["e0", "e1"]
        manifest = runs.read_manifest(layout)
        assert dataclasses.replace(manifest, output=commit.manifest.output, tables={}) == commit.manifest, cut
        for dataset, name in tables.table_names(TABLE).items():
            table = catalog.load_table(name)
            attempts = [s.summary.additional_properties["textcnn.attempt"] for s in table.snapshots()]
            assert attempts == ["a1", "a2"], (cut, name)
            assert manifest.tables[dataset].snapshot_id == table.current_snapshot().snapshot_id
        assert sorted(f.rows for f in manifest.output.files) == [1, 2] and manifest.tables[SCORES].rows == 3
        assert not os.path.exists(layout.staging) and not os.path.exists(out / SCORES)
        cut += 1
    assert cut == len(steps) + 1 == 8


def test_drift_reads_the_previous_night_from_the_tables_snapshots(tmp_path):
    layout, commit = _staged(tmp_path, "a1", [["n0"]], [])
    commit = dataclasses.replace(commit, manifest=dataclasses.replace(
        commit.manifest, distributions=Distributions({"pos": 1}, [0, 1])))
    runs.publish(layout, commit, tables.commit_steps)
    previous = tables.previous_night("default", str(tmp_path), TABLE, "run_date=2026-12-07")
    assert previous == ("run_date=2026-12-06", Distributions({"pos": 1}, [0, 1]))
    assert tables.previous_night("default", str(tmp_path), TABLE, "run_date=2026-12-05") is None   # only earlier dates
    assert tables.previous_night("default", str(tmp_path), TABLE, RUN) is None                     # not itself
    assert tables.previous_night("default", str(tmp_path), "nightly.other", "run_date=2026-12-07") is None
