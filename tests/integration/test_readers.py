"""A scoring output read as a data team reads it: the folder, with pandas, pyarrow, polars, DuckDB and
Ray Data, not through textcnn. Two nights, a rerun of the second with other input, and a third night
stopped before its commit: every reader returns exactly the committed rows, with the score columns;
the dead letters, read the same way from their own folder, exactly the dead-lettered rows."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import ray

from tests.conftest import make_tiny_model, night_corpus
from textcnn.config import ScoreConfig
from textcnn.scoring.records import Manifest
from textcnn.scoring.run import DriftError, score

pytestmark = pytest.mark.integration



def _score(model: str, corpus: Path, out: Path, date: str, **kw):
    return score(ScoreConfig(model=model, input=str(corpus), output=str(out), run_date=date, actors=1,
                             batch_size=64, **kw))


def _readers(root: Path) -> dict[str, pd.DataFrame]:
    """The dataset at root as each reader returns it, with the columns each gives."""
    glob = f"{root}/**/*.parquet"
    return {
        "pandas": pd.read_parquet(root),
        "pyarrow": pads.dataset(root, partitioning="hive").to_table().to_pandas(),
        "polars folder": pl.read_parquet(root, hive_partitioning=True).to_pandas(),
        "polars glob": pl.scan_parquet(glob, hive_partitioning=True).collect().to_pandas(),
        "duckdb": duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning = true)").df(),
        "ray data": ray.data.read_parquet(str(root)).to_pandas(),
    }


@pytest.fixture(scope="module")
def nights(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    tmp = tmp_path_factory.mktemp("readers")
    model = make_tiny_model(tmp)
    out = tmp / "out"
    for name, prefix, rows in (("n1", "a", 40), ("n2", "b", 60), ("n2-rerun", "c", 50), ("n3", "d", 30)):
        night_corpus(tmp / name, prefix, rows)
    manifests = {"2026-12-05": _score(model, tmp / "n1", out, "2026-12-05").manifest}
    _score(model, tmp / "n2", out, "2026-12-06")
    manifests["2026-12-06"] = _score(model, tmp / "n2-rerun", out, "2026-12-06").manifest   # replaces it
    with pytest.raises(DriftError):            # scored and staged, then stopped before its commit
        _score(model, tmp / "n3", out, "2026-12-07", max_drift=0.0)
    assert list((out / "_staging" / "run_date=2026-12-07" / "units").iterdir())
    return out, manifests


def _committed(out: Path, manifests: dict[str, Manifest], dead: bool) -> dict[str, set[str]]:
    """{date: ids} as the manifests list them, read from the files they name."""
    files = {date: m.output.dead_letter_files if dead else m.output.files for date, m in manifests.items()}
    return {date: set(pq.read_table([str(out / f.path) for f in listed]).column("id").to_pylist())
            for date, listed in files.items()}


def test_every_reader_sees_exactly_the_committed_scores(nights):
    out, manifests = nights
    expected = _committed(out, manifests, dead=False)
    assert {d: len(ids) for d, ids in expected.items()} == {"2026-12-05": 37, "2026-12-06": 47}
    assert all(m.output.rows_scored == len(expected[d]) for d, m in manifests.items())
    for reader, frame in _readers(out / "scores").items():
        assert {"id", "predicted_label", "predicted_prob", "prob_neg", "prob_pos", "model_version",
                "vocab_hash", "run_id", "run_date"} <= set(frame.columns), reader
        assert "reason" not in frame.columns, reader
        assert len(frame) == sum(len(ids) for ids in expected.values()), reader
        for date, ids in expected.items():
            rows = frame[frame["run_date"].astype(str) == date]
            assert set(rows["id"]) == ids and len(rows) == len(ids), (reader, date)
        assert frame["prob_neg"].notna().all() and frame["predicted_label"].isin(["neg", "pos"]).all(), reader


def test_every_reader_sees_exactly_the_committed_dead_letters(nights):
    out, manifests = nights
    for reader, frame in _readers(out / "dead_letters").items():
        assert {"id", "source_file", "source_row", "reason", "run_date"} <= set(frame.columns), reader
        assert "predicted_label" not in frame.columns, reader
        for date, m in manifests.items():
            rows = frame[frame["run_date"].astype(str) == date]
            assert len(rows) == m.output.rows_dead_lettered == 3, (reader, date)
            assert sorted(rows["reason"]) == ["id_duplicate", "id_null", "text_empty"], (reader, date)
        assert len(frame) == 6, reader
