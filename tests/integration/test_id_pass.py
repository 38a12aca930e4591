"""The id pass on a real local Ray: duplicates planted across many files and within files, each
row scored or dead-lettered once, the first occurrence (file, then row order) scored."""

import dataclasses
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import corrupt_pages
from textcnn.config import ScoreConfig
from textcnn.core.rows import DataError
from textcnn.scoring import ids, runs
from textcnn.scoring import plan as plan_module
from textcnn.scoring.run import score

pytestmark = pytest.mark.integration

TEXTS = ["a good film", "dull and slow", "great fun", "a bad film"]


def _corpus(folder, files=30, rows=60, seed=5):
    """files x rows rows whose ids repeat across and within files, with nulls; returns
    {(file, row): id} and the (file, row) of every repeat, found the obvious way."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder)
    table, seen, repeats = {}, set(), set()
    for f in range(files):
        values = [None if rng.random() < 0.05 else f"id-{int(rng.integers(0, files * rows * 0.8)):012d}"
                  for _ in range(rows)]
        for row, value in enumerate(values):
            table[(f, row)] = value
            if value is not None and value in seen:
                repeats.add((f, row))
            seen.add(value)
        pq.write_table(pa.table({"id": pa.array(values, pa.string()),
                                 "text": [TEXTS[(f + r) % len(TEXTS)] for r in range(rows)]}),
                       os.path.join(folder, f"part-{f:03d}.parquet"), row_group_size=25)
    return table, repeats


def test_duplicates_across_many_files_are_dead_lettered_after_their_first_occurrence(tiny_model_dir, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.setattr(ids, "PART_ROWS", 300)     # several partitions, read tasks and unit ranges
    monkeypatch.setattr(ids, "TASK_ROWS", 400)
    monkeypatch.setattr(plan_module, "FOOTER_TASK_FILES", 7)     # the footers too, by 5 Ray tasks
    table, repeats = _corpus(tmp_path / "in")
    summary = score(ScoreConfig(model=tiny_model_dir, input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                                run_id="dups", actors=1, unit_rows=130, batch_size=64))
    scores, dead = runs.read_run(summary.layout), runs.read_run(summary.layout, dead_letter=True)
    assert summary.rows_in == len(table) == scores.num_rows + dead.num_rows
    where = [(int(os.path.basename(s).split("-")[1].split(".")[0]), r)
             for s, r in zip(dead["source_file"].to_pylist(), dead["source_row"].to_pylist())]
    assert len(where) == len(set(where))                                     # each dead letter once
    by_reason = {reason: {w for w, r in zip(where, dead["reason"].to_pylist()) if r == reason}
                 for reason in set(dead["reason"].to_pylist())}
    assert by_reason["id_duplicate"] == repeats and len(repeats) > 200
    assert by_reason["id_null"] == {k for k, v in table.items() if v is None}
    firsts = {v for k, v in table.items() if v is not None}
    assert sorted(scores["id"].to_pylist()) == sorted(firsts)               # every id scored once
    assert summary.manifest.timings["id_pass_seconds"] > 0
    assert not os.path.exists(tmp_path / "out" / "_staging" / "run=dups")   # the pass's files went with it


def test_a_resumed_run_reuses_the_staged_duplicates_instead_of_a_second_pass(tiny_model_dir, tmp_path, monkeypatch):
    from textcnn.scoring import run as score_module
    table, repeats = _corpus(tmp_path / "in", files=6, rows=50)
    config = ScoreConfig(model=tiny_model_dir, input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                         run_id="again", actors=1, unit_rows=100, batch_size=64)

    def killed(*args, **kwargs):                  # the driver dies once the pass is staged
        raise KeyboardInterrupt
    monkeypatch.setattr(score_module, "_score_pending", killed)
    with pytest.raises(KeyboardInterrupt):
        score(config)
    staged = tmp_path / "out" / "_staging" / "run=again" / "dups"
    assert (staged / "_DONE.json").exists() and list(staged.glob("u-*.parquet"))
    monkeypatch.undo()

    def no_second_pass(*args, **kwargs):
        raise AssertionError("the id pass ran again")
    monkeypatch.setattr(ids, "duplicate_pass", no_second_pass)
    summary = score(config)
    dead = runs.read_run(summary.layout, dead_letter=True)
    assert summary.manifest.timings["id_pass_seconds"] == 0
    assert dead.filter(pc.equal(dead["reason"], "id_duplicate")).num_rows == len(repeats) > 0
    assert summary.rows_in == len(table) == summary.rows_scored + summary.rows_dead


def test_a_file_whose_ids_do_not_read_is_named_or_with_the_flag_skipped(tiny_model_dir, tmp_path):
    table, _ = _corpus(tmp_path / "in", files=4, rows=50)
    path = tmp_path / "in" / "part-002.parquet"
    corrupt_pages(path, row_group=1, column=0)                          # the id column's second chunk
    config = ScoreConfig(model=tiny_model_dir, input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                         run_id="bad", actors=1, unit_rows=100, batch_size=64)
    with pytest.raises(DataError, match=r"part-002.parquet: ids not readable"):
        score(config)
    summary = score(dataclasses.replace(config, skip_bad_files=True))
    assert [s.uri for s in summary.manifest.input.skipped_files] == [str(path)]
    assert summary.rows_in == 150 == summary.rows_scored + summary.rows_dead
