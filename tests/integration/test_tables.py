"""Scores as Iceberg tables (--output-table): on the embedded SQLite catalog, two nights, a rerun of the
second with other input (its partition replaced in one snapshot), a night stopped before its commit and
resumed, a night whose commit is cut off between its two tables and finished by the rerun; read back
with pyiceberg (pyarrow, pandas, polars) and Ray Data: counts and ids equal the manifests. Then one
night through a configured catalog (PYICEBERG_CATALOG__* variables) with its warehouse on the loopback
S3 endpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from tests.conftest import NIGHT_TEXTS, make_tiny_model, night_corpus
from textcnn.config import ConfigError, ScoreConfig
from textcnn.scoring import runs, tables
from textcnn.scoring.records import DEAD_LETTERS, SCORES, Manifest
from textcnn.scoring.run import DriftError, score

pytestmark = pytest.mark.integration

TABLE = "nightly.scores"


def _score(model: str, corpus: Path, out: Path | str, date: str, **kw):
    return score(ScoreConfig(model=model, input=str(corpus), output=str(out), run_date=date, actors=1,
                             batch_size=64, **{"output_table": TABLE, **kw}))


class _Kill(BaseException):
    """A kill between two steps of the commit (BaseException: nothing on the way catches it)."""


@pytest.fixture(scope="module")
def nights(tmp_path_factory, monkeypatch_module) -> tuple[Path, dict[str, Manifest], dict]:
    tmp = tmp_path_factory.mktemp("tables")
    monkeypatch_module.setenv("PYICEBERG_HOME", str(tmp))         # no ~/.pyiceberg.yaml of the machine
    model = make_tiny_model(tmp)
    out = tmp / "out"
    for name, prefix, rows in (("n1", "a", 40), ("n2", "b", 60), ("n2-rerun", "c", 50), ("n3", "d", 30),
                               ("n4", "e", 20)):
        night_corpus(tmp / name, prefix, rows)
    seen = {}
    manifests = {"2026-12-05": _score(model, tmp / "n1", out, "2026-12-05").manifest}
    seen["n2"] = _score(model, tmp / "n2", out, "2026-12-06").manifest
    manifests["2026-12-06"] = _score(model, tmp / "n2-rerun", out, "2026-12-06").manifest   # replaces it
    with pytest.raises(DriftError):            # scored and staged, then stopped before its commit
        _score(model, tmp / "n3", out, "2026-12-07", max_drift=0.0)
    assert tables.load("default", str(out)).load_table(TABLE).scan(
        row_filter="run_id == '2026-12-07'").to_arrow().num_rows == 0
    resumed = _score(model, tmp / "n3", out, "2026-12-07")
    assert resumed.manifest.resume.units_reused == resumed.manifest.resume.units > 0
    manifests["2026-12-07"] = resumed.manifest
    # the commit killed after the scores' snapshot, before the dead letters': the rerun finishes it
    real, calls = tables.commit_table, []

    def cut(catalog, name, *args):
        calls.append(name)
        if name.endswith(tables.DEAD_LETTER_SUFFIX) and calls.count(name) == 1:
            raise _Kill()
        return real(catalog, name, *args)
    monkeypatch_module.setattr(tables, "commit_table", cut)
    with pytest.raises(_Kill):
        _score(model, tmp / "n4", out, "2026-12-08")
    assert runs.read_manifest(runs.Layout(str(out), "run_date=2026-12-08")) is None
    manifests["2026-12-08"] = _score(model, tmp / "n4", out, "2026-12-08").manifest
    assert calls == [TABLE, TABLE + "_dead_letters"] * 2
    return out, manifests, seen


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def _ids(values) -> list:
    """Sorted ids, a null (None, or NaN in pandas) as None."""
    return sorted((v if isinstance(v, str) else None for v in values), key=str)


def _manifest_ids(manifest: Manifest, dead: bool = False) -> list:
    """The ids of the data files the manifest names, read with pyarrow straight from the files."""
    files = manifest.output.dead_letter_files if dead else manifest.output.files
    return _ids(pq.read_table([f.path.removeprefix("file://") for f in files], partitioning=None).column("id")
                .to_pylist())


def _readers(out: Path, name: str) -> dict[str, dict[str, list]]:
    """{reader: {run_id: sorted ids}} of table name as pyiceberg (to pyarrow, pandas, polars) and Ray Data read it."""
    table = tables.load("default", str(out)).load_table(name)
    frames = {"pyarrow": table.scan().to_arrow().to_pandas(), "pandas": table.scan().to_pandas(),
              "polars": table.scan().to_polars().to_pandas(),
              "ray data": ray.data.read_iceberg(table_identifier=name, catalog_kwargs=tables.catalog_properties(
                  "default", str(out))).to_pandas()}
    return {reader: {run: _ids(rows["id"]) for run, rows in frame.groupby("run_id")}
            for reader, frame in frames.items()}


def test_every_reader_sees_exactly_the_committed_nights(nights):
    out, manifests, _ = nights
    assert {d: m.output.rows_scored for d, m in manifests.items()} == {
        "2026-12-05": 37, "2026-12-06": 47, "2026-12-07": 27, "2026-12-08": 17}
    for dataset, name, dead in ((SCORES, TABLE, False), (DEAD_LETTERS, TABLE + "_dead_letters", True)):
        expected = {d: _manifest_ids(m, dead) for d, m in manifests.items()}
        for d, m in manifests.items():
            assert m.tables[dataset].table == name and m.tables[dataset].snapshot_id is not None
            rows = m.output.rows_dead_lettered if dead else m.output.rows_scored
            assert len(expected[d]) == rows == m.tables[dataset].rows, (dataset, d)
        for reader, got in _readers(out, name).items():
            assert got == expected, (reader, dataset)


def test_a_rerun_replaces_its_night_in_one_snapshot_and_leaves_the_others(nights):
    out, manifests, seen = nights
    table = tables.load("default", str(out)).load_table(TABLE)
    rerun = table.snapshot_by_id(manifests["2026-12-06"].tables[SCORES].snapshot_id)
    before = table.snapshot_by_id(rerun.parent_snapshot_id)
    assert before.snapshot_id == seen["n2"].tables[SCORES].snapshot_id      # nothing in between: one snapshot
    at = {s.snapshot_id: table.scan(snapshot_id=s.snapshot_id).to_arrow() for s in (before, rerun)}
    night = {k: sorted(str(i) for i, r in zip(t["id"].to_pylist(), t["run_id"].to_pylist()) if r == "2026-12-06")
             for k, t in at.items()}
    assert night[before.snapshot_id] == sorted(map(str, _manifest_ids(seen["n2"])))
    assert night[rerun.snapshot_id] == sorted(map(str, _manifest_ids(manifests["2026-12-06"])))
    first = {k: sorted(str(i) for i, r in zip(t["id"].to_pylist(), t["run_id"].to_pylist()) if r == "2026-12-05")
             for k, t in at.items()}
    assert first[before.snapshot_id] == first[rerun.snapshot_id] == sorted(map(str, _manifest_ids(
        manifests["2026-12-05"])))
    summary = rerun.summary.additional_properties
    m = manifests["2026-12-06"]
    assert summary["textcnn.run"] == "run_date=2026-12-06" and summary["textcnn.attempt"] == m.attempt
    assert summary["textcnn.model-version"] == m.model.model_version
    assert summary["textcnn.vocab-hash"] == m.model.vocab_hash
    assert summary["textcnn.rows-scored"] == "47" and summary["textcnn.rows-dead-lettered"] == "3"
    assert summary["textcnn.drift-vs"] == "run_date=2026-12-05" and float(summary["textcnn.drift"]) >= 0
    assert rerun.summary["deleted-records"] == "57" and rerun.summary["added-records"] == "47"


def test_a_cut_off_commit_is_finished_without_writing_a_snapshot_twice(nights):
    out, manifests, _ = nights
    catalog = tables.load("default", str(out))
    for name in (TABLE, TABLE + "_dead_letters"):
        snapshots = catalog.load_table(name).snapshots()
        attempts = [s.summary.additional_properties["textcnn.attempt"] for s in snapshots]
        assert len(attempts) == len(set(attempts)) == 5, name           # five commits, each once
    assert not os.path.exists(out / "_staging" / "run_date=2026-12-08")
    assert not os.path.exists(out / "scores")                        # the folder holds state, not scores
    assert all((out / "_runs" / f"run_date={d}" / "_SUCCESS").exists() for d in manifests)


def test_a_bad_table_name_or_catalog_is_refused_before_anything_runs(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="output_table: must be namespace.table"):
        _score("m", tmp_path, tmp_path / "out", "2026-12-05", output_table="scores")
    with pytest.raises(ConfigError, match="catalog: needs output_table"):
        _score("m", tmp_path, tmp_path / "out", "2026-12-05", output_table="", catalog="prod")
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    with pytest.raises(tables.TableError, match="catalog 'prod' is not configured"):
        _score("m", tmp_path, "s3://bucket/out", "2026-12-05", catalog="prod")


def test_a_night_into_a_configured_catalog_with_its_warehouse_on_s3(s3, tmp_path, monkeypatch):
    bucket = s3.bucket("iceberg")
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    for key, value in {"TYPE": "sql", "URI": f"sqlite:///{tmp_path}/catalog.db", "WAREHOUSE": f"{bucket}/warehouse",
                       "S3__ENDPOINT": s3.url, "S3__ACCESS_KEY_ID": s3.key, "S3__SECRET_ACCESS_KEY": s3.secret,
                       "S3__REGION": "us-east-1"}.items():
        monkeypatch.setenv(f"PYICEBERG_CATALOG__LAKE__{key}", value)
    model = make_tiny_model(tmp_path)
    night_corpus(tmp_path / "n1", "s", 40)
    s3.upload(str(tmp_path / "n1"), f"{bucket}/in/n1")
    summary = _score(model, f"{bucket}/in/n1", f"{bucket}/out", "2026-12-05", catalog="lake")
    assert summary.manifest.tables[SCORES].snapshot_id is not None
    assert all(f.path.startswith(f"{bucket}/warehouse/nightly/scores/data/") for f in summary.manifest.output.files)
    table = tables.load("lake", f"{bucket}/out").load_table(TABLE)
    ids = sorted(table.scan().to_arrow()["id"].to_pylist())
    assert len(ids) == summary.rows_scored == 37
    assert runs.read_manifest(runs.Layout(f"{bucket}/out", "run_date=2026-12-05")).tables == summary.manifest.tables


def _events(prefix: str, rows: int) -> pa.Table:
    return pa.table({"id": [f"{prefix}{i}" for i in range(rows)],
                     "text": [NIGHT_TEXTS[i % len(NIGHT_TEXTS)] for i in range(rows)]})


def test_an_input_table_is_scored_whole_then_only_its_rows_appended_since_a_snapshot(tmp_path, monkeypatch):
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    model, out = make_tiny_model(tmp_path), tmp_path / "out"
    catalog = tables.load("default", str(out))
    catalog.create_namespace_if_not_exists("raw")
    events = catalog.create_table("raw.events", schema=_events("a", 1).schema)
    events.append(_events("a", 30))
    first = events.current_snapshot().snapshot_id
    whole = _score(model, "", out, "2026-12-05", input_table="raw.events")
    events.append(_events("b", 20))
    events.append(_events("c", 10))
    night = _score(model, "", out, "2026-12-06", input_table="raw.events", since_snapshot=first)
    scores = catalog.load_table(TABLE)
    for summary, snapshot, since, ids in ((whole, first, None, {f"a{i}" for i in range(30)}),
                                          (night, events.current_snapshot().snapshot_id, first,
                                           {f"b{i}" for i in range(20)} | {f"c{i}" for i in range(10)})):
        source = summary.manifest.input.table
        assert (source.table, source.snapshot_id, source.since_snapshot_id) == ("raw.events", snapshot, since)
        assert summary.rows_in == summary.rows_scored == len(ids)
        run = scores.scan(row_filter=f"run_id == '{summary.manifest.run_id}'").to_arrow()
        assert set(run["id"].to_pylist()) == ids and run.num_rows == len(ids)
    last = events.current_snapshot().snapshot_id
    events.overwrite(_events("d", 5))            # rows scored before are gone: not an incremental night
    with pytest.raises(tables.TableError, match="not an append"):
        _score(model, "", out, "2026-12-07", input_table="raw.events", since_snapshot=last)
    with pytest.raises(ConfigError, match="input_table: is the output table"):
        _score(model, "", out, "2026-12-07", input_table=TABLE)
