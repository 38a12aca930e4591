"""jobs/score.py as cron runs it: a second run of a live date is refused; a driver SIGKILLed part way
and started again finishes with exactly the rows of an uninterrupted run, reusing what it committed."""

import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.procs import Jobs, wait_until
from textcnn.core import artifacts
from textcnn.scoring import runs
from textcnn.scoring.scorer import Scorer
from textcnn.scoring.stages import PROB_PREFIX

pytestmark = pytest.mark.e2e

WORDS = "a good film bad great fun dull and slow".split()
DATE = "2026-11-29"


def _corpus(folder: Path, files: int, rows: int) -> pa.Table:
    folder.mkdir()
    rng = np.random.default_rng(0)
    tables = []
    for f in range(files):
        texts = [" ".join(rng.choice(WORDS, size=rng.integers(2, 12))) for _ in range(rows)]
        tables.append(pa.table({"id": [f"{f}-{i}" for i in range(rows)], "text": texts}))
        pq.write_table(tables[-1], folder / f"part-{f:03d}.parquet", row_group_size=rows // 4)
    return pa.concat_tables(tables)


class ScoreJobs(Jobs):
    def __init__(self, tmp: Path, model: Path, corpus: Path, out: Path):
        super().__init__(tmp)
        self.args = ["--model", str(model), "--input", str(corpus), "--output", str(out), "--date", DATE,
                     "--actors", "1", "--batch-size", "64", "--unit-rows", "500"]

    def start(self, name: str) -> subprocess.Popen:
        return super().start(name, "score", self.args)


@pytest.fixture
def jobs(tmp_path, tiny_model_dir):
    corpus = tmp_path / "corpus"
    # files of 250 rows in row groups of 62 (and one of 2): two files per 500-row unit, so the killed
    # run commits, and the resumed one reuses, units that span files
    table = _corpus(corpus, files=80, rows=250)
    j = ScoreJobs(tmp_path, Path(tiny_model_dir), corpus, tmp_path / "out")
    j.table, j.model, j.out = table, tiny_model_dir, tmp_path / "out"
    yield j
    j.stop_all()


def _done_units(out: Path) -> int:
    return len(list(out.glob(f"_staging/run_date={DATE}/units/*/_DONE.json")))


def test_lock_refuses_a_second_run_and_a_killed_run_resumes_to_the_same_rows(jobs):
    first = jobs.start("first")
    wait_until(lambda: list(jobs.out.glob("_locks/*.json")), first)
    # the second starts while the first's local Ray is still starting, so it is refused before the
    # first has scored much: the kill comes early and the corpus can stay small
    second = jobs.start("second")                     # same date while the first holds the lock
    assert second.wait(timeout=120) == 1
    assert "LockedError" in jobs.log("second") and "held by a live run" in jobs.log("second")
    wait_until(lambda: _done_units(jobs.out) >= 3, first)
    assert first.poll() is None, "the first run ended before it could be killed:\n" + jobs.log("first")[-3000:]
    jobs.kill(first)                                  # SIGKILL part way: no cleanup runs
    committed = _done_units(jobs.out)
    assert 3 <= committed < 40 and not (jobs.out / "_runs" / f"run_date={DATE}" / "_SUCCESS").exists()

    again = jobs.start("again")                       # takes over the dead driver's lock and resumes
    assert again.wait(timeout=600) == 0, jobs.log("again")
    manifest = runs.read_manifest(runs.Layout(str(jobs.out), f"run_date={DATE}"))
    assert manifest.resume.units_reused >= committed and manifest.resume.units == 40
    assert "20,000 scored + 0 dead-lettered of 20,000 rows" in jobs.log("again")
    scores = runs.read_run(runs.Layout(str(jobs.out), f"run_date={DATE}")).sort_by("id")
    expected = jobs.table.sort_by("id")
    assert scores["id"].to_pylist() == expected["id"].to_pylist()       # each row once
    # the same scores an uninterrupted pass gives: the Ray-free Scorer over the same texts
    scorer = Scorer(jobs.model)
    direct = scorer.probabilities(artifacts.load(jobs.model).tokenizer.encode(expected["text"].to_pylist()))
    np.testing.assert_allclose(scores[PROB_PREFIX + "pos"].to_numpy(), direct[:, 1], rtol=1e-5, atol=1e-6)
    assert not list(jobs.out.glob("_locks/*.json"))
