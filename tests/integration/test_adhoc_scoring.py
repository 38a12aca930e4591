"""Scoring a corpus without ids, carrying input columns through (--no-id, --keep-columns), on a real
local Ray (conftest.py): every row scored or dead-lettered once, kept values as in the input, and a
run stopped before its commit resumes from its staged units."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import make_tiny_model
from textcnn.config import ScoreConfig
from textcnn.scoring.run import DriftError, score
from textcnn.scoring.runs import read_manifest, read_run

pytestmark = pytest.mark.integration

TEXTS = ["a good film", "dull and slow", "great fun", "a bad film", "", None, "good\x00film"]


def corpus(root: Path) -> dict[str, dict]:
    """Two files without ids, one in a subfolder, with the kept columns' strings dictionary-encoded in
    one file only; {id as the run makes it: the input row}."""
    files = {"a.parquet": 30, "sub/b.parquet": 23}
    rows = {}
    for f_index, (name, n) in enumerate(files.items()):
        table = pa.table({"text": [TEXTS[i % len(TEXTS)] for i in range(n)],
                          "lang": pa.array([f"l{i % 3}" for i in range(n)]),
                          "n": pa.array([i * 10 + f_index for i in range(n)], pa.int64())})
        if f_index == 0:
            table = table.set_column(1, "lang", table["lang"].dictionary_encode())
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / name, row_group_size=10)
        rows.update({f"{name}:{i}": row for i, row in enumerate(table.to_pylist())})
    return rows


def test_a_corpus_without_ids_keeps_its_columns_and_resumes(tmp_path):
    model = make_tiny_model(tmp_path)
    rows = corpus(tmp_path / "in")
    other = tmp_path / "other"
    other.mkdir()
    pq.write_table(pa.table({"text": ["great fun"] * 40, "lang": ["x"] * 40, "n": list(range(40))}),
                   other / "c.parquet")
    run = dict(model=model, output=str(tmp_path / "out"), actors=1, batch_size=16, unit_rows=10,
               keep_columns=("lang", "n"), no_id=True)
    score(ScoreConfig(input=str(other), run_id="before", **run))
    with pytest.raises(DriftError):            # stopped before its commit: its units stay staged
        score(ScoreConfig(input=str(tmp_path / "in"), run_id="t", max_drift=0.0, **run))
    summary = score(ScoreConfig(input=str(tmp_path / "in"), run_id="t", **run))
    manifest = read_manifest(summary.layout)
    assert manifest.resume.units_reused == manifest.resume.units > 1

    scores, dead = read_run(summary.layout), read_run(summary.layout, dead_letter=True)
    assert scores.column_names[:3] == ["id", "lang", "n"] and "text" not in scores.column_names
    assert scores.schema.field("lang").type == pa.string() and scores.schema.field("n").type == pa.int64()
    for row in scores.select(["id", "lang", "n"]).to_pylist():
        assert (row["lang"], row["n"]) == (rows[row["id"]]["lang"], rows[row["id"]]["n"])
    ids = scores["id"].to_pylist() + dead["id"].to_pylist()
    assert sorted(ids) == sorted(rows) and len(set(ids)) == len(ids)       # each row once
    assert set(dead["reason"].to_pylist()) == {"text_empty", "text_null", "text_control_chars"}
    assert all(rows[i]["text"] in ("", None, "good\x00film") for i in dead["id"].to_pylist())
    assert manifest.output.rows_scored == scores.num_rows and summary.rows_in == len(rows)
