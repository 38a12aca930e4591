"""s3:// in and out against a real S3 HTTP endpoint (moto's server) on loopback."""

import json

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from textcnn import storage
from textcnn.config import ScoreConfig
from textcnn.demo import SAMPLE_TEST
from textcnn.runs import read_run
from textcnn.score import PRED_LABEL, PRED_PROB, score
from textcnn.stages import LINEAGE

pytestmark = pytest.mark.integration


def test_score_s3_to_s3(s3, tmp_path, tiny_model_dir):
    """Training on S3 (checkpoints, resume, the model directory) is tests/e2e/test_train_resume.py."""
    bucket = s3.bucket("textcnn-it")
    # the corpus: 60 small files under one prefix (each costs moto a dozen requests or so)
    test = pq.read_table(SAMPLE_TEST, columns=["id", "text"])
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(60):
        pq.write_table(test.slice(i * 20, 20), corpus / f"part-{i:04d}.parquet")
    s3.upload(str(corpus), f"{bucket}/corpus")

    model = f"{bucket}/models/tiny"
    s3.upload(tiny_model_dir, model)
    fs = s3.fs()

    summary = score(ScoreConfig(model=model, input=f"{bucket}/corpus", output=f"{bucket}/scores",
                                run_date="2026-11-29", actors=2, allow_unknown_only=True))  # tiny vocabulary
    assert summary.run_dir == f"{bucket}/scores/run_date=2026-11-29"
    scores = read_run(summary.run_dir)
    assert summary.rows_in == summary.rows_scored == scores.num_rows == 1200 and summary.rows_dead == 0
    assert sorted(scores.column("id").to_pylist()) == sorted(test.column("id").to_pylist()[:1200])
    assert scores.schema.names == ["id", PRED_LABEL, PRED_PROB, "prob_neg", "prob_pos", *LINEAGE]
    manifest = storage.read_text(f"{summary.run_dir}/_SUCCESS")
    assert s3.secret not in manifest and s3.key not in manifest
    assert len(json.loads(manifest)["input"]["files"]) == 60
    assert json.loads(manifest)["config"]["batch_size"] == 4096      # resolved from the device: CPU
    # staging and the lock are gone once committed
    left = fs.get_file_info(pafs.FileSelector("textcnn-it/scores", recursive=True))
    assert not [f.path for f in left if f.type == pafs.FileType.File and ("/_staging/" in f.path
                                                                          or "/_locks/" in f.path)]
