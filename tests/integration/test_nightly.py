"""The nightly run's contract on a real local Ray and real files: dead letters, lineage, replace on
rerun, validation, corrupt input, drift."""

import dataclasses
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import corrupt_pages
from textcnn.config import ScoreConfig
from textcnn.core import artifacts
from textcnn.core.rows import REASONS, DataError
from textcnn.scoring import runs
from textcnn.scoring.run import DriftError, score
from textcnn.scoring.scorer import Scorer
from textcnn.scoring.stages import PRED_LABEL, PROB_PREFIX

pytestmark = pytest.mark.integration

GOOD = ["a good film", "dull and slow", "great fun", "a bad film", "good fun and a great film"]


def _corpus(folder, files=4, rows=500, plant=True):
    """files x rows (id, text) rows; with plant, one row of every bad kind (and a binary-text file).
    Returns {id or (file, row): expected reason or None}."""
    os.makedirs(folder, exist_ok=True)
    expected = {}
    for f in range(files):
        ids = [f"f{f}-{i}" for i in range(rows)]
        texts = [GOOD[(i * 7 + f) % len(GOOD)] for i in range(rows)]
        if plant and f == 1:
            bad = {3: (None, None, "id_null"), 4: ("f0-5", None, "id_duplicate"), 5: ("  ", None, "id_empty"),
                   6: ("x" * 300, None, "id_too_long"), 7: (None, None, "text_null"),
                   8: (None, "", "text_empty"), 9: (None, "qwzx vbnm", "text_unknown_only"),
                   10: (None, "good\x00film", "text_control_chars"), 11: (None, "fun " * 30_000, "text_too_long")}
            for row, (new_id, new_text, reason) in bad.items():
                ids[row] = new_id if reason.startswith("id_") else ids[row]
                texts[row] = None if reason == "text_null" else (texts[row] if new_text is None else new_text)
                expected[(f, row)] = reason
        path = os.path.join(folder, f"part-{f}.parquet")
        pq.write_table(pa.table({"id": ids, "text": texts}), path, row_group_size=200)
        expected.update({(f, i): None for i in range(rows) if (f, i) not in expected})
    if plant:   # a file whose text column is bytes: one invalid UTF-8 row among good ones
        texts = [g.encode() for g in GOOD] + [b"\xff\xfe not utf-8"]
        pq.write_table(pa.table({"id": [f"bin-{i}" for i in range(6)], "text": pa.array(texts, pa.binary())}),
                       os.path.join(folder, f"part-{files}.parquet"))
        expected.update({(files, i): None for i in range(5)})
        expected[(files, 5)] = "text_invalid_utf8"
    return expected


def _config(model, corpus, out, **kw):
    return ScoreConfig(model=model, input=str(corpus), output=str(out), actors=2, unit_rows=400,
                       **{"run_date": "2026-11-29", "batch_size": 128, **kw})


def test_every_row_is_scored_once_or_dead_lettered_with_its_reason(tiny_model_dir, tmp_path):
    expected = _corpus(tmp_path / "in")
    summary = score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out"))
    scores, dead = runs.read_run(summary.layout), runs.read_run(summary.layout, dead_letter=True)
    manifest = summary.manifest
    bad = {k: v for k, v in expected.items() if v}
    row_reasons = set(REASONS) - {"row_group_unreadable"}      # a file's fault: test_a_corrupt_page_...
    assert set(bad.values()) == row_reasons and len(row_reasons) == 10
    assert summary.rows_in == len(expected) == scores.num_rows + dead.num_rows
    assert manifest.output.rows_dead_lettered == dead.num_rows == len(bad)
    # each bad row once, with its file, row and reason
    got = {(int(os.path.basename(s).split("-")[1].split(".")[0]), r): reason for s, r, reason in
           zip(dead["source_file"].to_pylist(), dead["source_row"].to_pylist(), dead["reason"].to_pylist())}
    assert got == bad
    assert manifest.output.dead_letter_reasons == {r: 1 for r in row_reasons}
    # each good row once, scored as the Ray-free Scorer scores it, with lineage
    ids = scores["id"].to_pylist()
    assert len(ids) == len(set(ids)) == len(expected) - len(bad)
    assert "f0-5" in ids and ids.count("f0-5") == 1         # the first occurrence of the duplicate wins
    loaded = artifacts.load(tiny_model_dir)
    assert set(scores["model_version"].to_pylist()) == {loaded.version}
    assert set(scores["vocab_hash"].to_pylist()) == {loaded.vocab_hash}
    assert set(scores["run_id"].to_pylist()) == {"2026-11-29"}
    scorer = Scorer(tiny_model_dir)
    by_id = dict(zip(ids, scores[PROB_PREFIX + "pos"].to_pylist()))
    direct = scorer.probabilities(loaded.tokenizer.encode(["great fun"]))[0, 1]
    assert all(abs(by_id[f"f2-{i}"] - direct) < 1e-6 for i in range(500) if GOOD[(i * 7 + 2) % 5] == "great fun")
    assert sum(manifest.distributions.labels.values()) == scores.num_rows
    assert sum(manifest.distributions.top_prob_histogram) == scores.num_rows
    assert [f.rows for f in manifest.input.files] == [500] * 4 + [6]


def test_a_rerun_replaces_the_date_instead_of_appending(tiny_model_dir, tmp_path):
    _corpus(tmp_path / "in", files=2, plant=False)
    out = tmp_path / "out"
    first = score(_config(tiny_model_dir, tmp_path / "in", out, batch_size=0))
    assert first.manifest.config["batch_size"] == 4096             # 0: resolved from the device, a CPU
    first_ids = sorted(runs.read_run(first.layout)["id"].to_pylist())
    again = score(_config(tiny_model_dir, tmp_path / "in", out))
    assert again.manifest.attempt != first.manifest.attempt
    # how a unit's rows split into files follows Ray Data's blocks, which vary between runs; the rows do not
    on_disk = sorted(p for p in os.listdir(again.run_dir) if p.endswith(".parquet"))
    assert on_disk == sorted(f.path.rsplit("/", 1)[1] for f in again.manifest.output.files)  # not appended
    again_ids = sorted(runs.read_run(again.layout)["id"].to_pylist())
    assert again_ids == first_ids and len(set(again_ids)) == 1000
    assert not os.path.exists(out / "_staging" / "run_date=2026-11-29")
    assert not os.listdir(out / "_locks")
    assert again.manifest.drift is None                  # no earlier date to compare with


def test_drift_against_the_previous_date_is_reported_and_can_stop_the_commit(tiny_model_dir, tmp_path):
    _corpus(tmp_path / "day1", files=2, plant=False)
    os.makedirs(tmp_path / "day2")
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(600)], "text": ["dull and slow"] * 600}),
                   tmp_path / "day2" / "part-0.parquet", row_group_size=200)
    out = tmp_path / "out"
    score(_config(tiny_model_dir, tmp_path / "day1", out, run_date="2026-11-28"))
    with pytest.raises(DriftError, match="over --max-drift 0.01"):
        score(_config(tiny_model_dir, tmp_path / "day2", out, max_drift=0.01))
    assert runs.read_manifest(runs.Layout(str(out), "run_date=2026-11-29")) is None           # nothing committed
    summary = score(_config(tiny_model_dir, tmp_path / "day2", out, max_drift=100.0))
    assert summary.manifest.resume.units_reused == 2 == summary.manifest.resume.units
    assert summary.manifest.drift.previous_run == "run_date=2026-11-28"
    assert summary.manifest.drift.drift > 0.01
    assert "drift" in summary.line()


def test_problems_are_named_together_before_any_actor_starts(tiny_model_dir, tmp_path):
    _corpus(tmp_path / "in", files=1, plant=False)
    pq.write_table(pa.table({"id": ["x"], "body": ["t"]}), tmp_path / "in" / "part-9.parquet")
    with open(os.path.join(tiny_model_dir, "weights.pt"), "ab") as f:
        f.write(b"tampered")
    with pytest.raises(DataError) as e:
        score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out"))
    assert "weights.pt: sha256" in str(e.value) and "part-9.parquet: no column 'text'" in str(e.value)
    assert not os.path.exists(tmp_path / "out")


def test_a_corrupt_file_is_named_or_with_the_flag_listed_as_skipped(tiny_model_dir, tmp_path):
    _corpus(tmp_path / "in", files=2, plant=False)
    data = (tmp_path / "in" / "part-1.parquet").read_bytes()
    (tmp_path / "in" / "part-1.parquet").write_bytes(data[: len(data) // 2])      # a truncated upload
    with pytest.raises(DataError, match=r"part-1.parquet: not readable as Parquet"):
        score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out"))
    summary = score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out", skip_bad_files=True))
    assert summary.rows_in == summary.rows_scored == 500
    skipped = summary.manifest.input.skipped_files
    assert [s.uri for s in skipped] == [str(tmp_path / "in" / "part-1.parquet")]
    manifest = json.loads((tmp_path / "out" / "_runs" / "run_date=2026-11-29" / "_SUCCESS").read_text())
    assert manifest["input"]["skipped_files"] == [dataclasses.asdict(s) for s in skipped]
    assert set(runs.read_run(summary.layout)[PRED_LABEL].to_pylist()) <= {"neg", "pos"}
    assert np.isfinite(runs.read_run(summary.layout)[PROB_PREFIX + "neg"].to_numpy()).all()


def test_a_corrupt_page_behind_a_sound_footer_is_named(tiny_model_dir, tmp_path):
    _corpus(tmp_path / "in", files=2, plant=False)
    path = tmp_path / "in" / "part-1.parquet"
    corrupt_pages(path, row_group=0, column=1)                       # the text column's first chunk
    with pytest.raises(DataError, match=r"part-1.parquet: row group 0 \(rows 0-199\): .* not committed"):
        score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out"))
    assert runs.read_manifest(runs.Layout(str(tmp_path / "out"), "run_date=2026-11-29")) is None
    # with the flag, the row group's rows are dead letters (ids read from the id column) and the rest is scored;
    # the units scored by the refused attempt are committed as they are
    summary = score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out", skip_bad_files=True))
    assert summary.manifest.resume.units_reused == summary.manifest.resume.units
    dead = runs.read_run(summary.layout, dead_letter=True)
    assert summary.rows_scored == 800 and summary.rows_dead == 200 == dead.num_rows
    assert set(dead["reason"].to_pylist()) == {"row_group_unreadable"}
    assert sorted(dead["id"].to_pylist()) == sorted(f"f1-{i}" for i in range(200))
    unreadable = summary.manifest.input.unreadable_row_groups
    assert [(u.uri, u.rows) for u in unreadable] == [(str(path), 200)] and "row group 0" in unreadable[0].error


def test_an_onnx_export_scores_the_same_and_explanations_ride_along(tiny_model_dir, tmp_path):
    from textcnn.core.export import export
    _corpus(tmp_path / "in", files=2, rows=300, plant=False)
    export(tiny_model_dir, "onnx", str(tmp_path / "onnx"))
    original = score(_config(tiny_model_dir, tmp_path / "in", tmp_path / "out", run_id="pt", run_date="",
                             explain=2))
    exported = score(_config(str(tmp_path / "onnx"), tmp_path / "in", tmp_path / "out", run_id="onnx",
                             run_date=""))
    a, b = (runs.read_run(s.layout).sort_by("id") for s in (original, exported))
    assert a["id"].to_pylist() == b["id"].to_pylist() and a.num_rows == 600
    np.testing.assert_allclose(a[PROB_PREFIX + "pos"].to_numpy(), b[PROB_PREFIX + "pos"].to_numpy(), atol=1e-4)
    onnx_config = json.load(open(tmp_path / "onnx" / "config.json"))
    assert exported.manifest.model.model_version == onnx_config["model_version"]
    explanations = [json.loads(e) for e in a["explanation"].to_pylist()]
    assert all(len(e) == 2 and e[0]["contribution"] >= e[1]["contribution"] for e in explanations)
    texts = dict(zip(*(pq.read_table(tmp_path / "in").column(c).to_pylist() for c in ("id", "text"))))
    first = a["id"][0].as_py()
    assert all(w in texts[first].split() for g in explanations[0] for w in g["ngram"].split())
    assert "explanation" not in b.column_names
