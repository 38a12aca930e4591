"""s3:// in and out against a real S3 HTTP endpoint (moto's server) on loopback."""

import json

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from textcnn import artifacts, storage
from textcnn.config import ScoreConfig, TrainConfig
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN
from textcnn.runs import read_run
from textcnn.score import PRED_LABEL, PRED_PROB, score
from textcnn.stages import LINEAGE
from textcnn.train import fit

pytestmark = pytest.mark.integration


def test_train_with_checkpoints_on_s3_then_score_s3_to_s3(s3, tmp_path):
    bucket = s3.bucket("textcnn-it")
    s3.upload(SAMPLE_TRAIN, f"{bucket}/data/train.parquet")
    # the corpus: 120 small files under one prefix
    test = pq.read_table(SAMPLE_TEST, columns=["id", "text"])
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(120):
        pq.write_table(test.slice(i * 10, 10), corpus / f"part-{i:04d}.parquet")
    s3.upload(str(corpus), f"{bucket}/corpus")

    model = f"{bucket}/models/rt"
    result = fit(TrainConfig(train=f"{bucket}/data/train.parquet", output=model, workers=2, epochs=1,
                             storage_path=f"{bucket}/checkpoints", run_name="s3-run"))
    fs = s3.fs()
    checkpoints = fs.get_file_info(pafs.FileSelector("textcnn-it/checkpoints/s3-run", recursive=True))
    assert any(f.base_name == "checkpoint.pt" for f in checkpoints)
    assert artifacts.verify(model) == [] and result.model_version == artifacts.load(model).version
    saved = json.dumps(json.loads(storage.read_text(f"{model}/config.json")))
    assert s3.secret not in saved and s3.key not in saved

    summary = score(ScoreConfig(model=model, input=f"{bucket}/corpus", output=f"{bucket}/scores",
                                run_date="2026-11-29", actors=2))
    assert summary.run_dir == f"{bucket}/scores/run_date=2026-11-29"
    scores = read_run(summary.run_dir)
    assert summary.rows_in == summary.rows_scored == scores.num_rows == 1200 and summary.rows_dead == 0
    assert sorted(scores.column("id").to_pylist()) == sorted(test.column("id").to_pylist()[:1200])
    assert scores.schema.names == ["id", PRED_LABEL, PRED_PROB, "prob_fresh", "prob_rotten", *LINEAGE]
    manifest = storage.read_text(f"{summary.run_dir}/_SUCCESS")
    assert s3.secret not in manifest and s3.key not in manifest
    assert len(json.loads(manifest)["input"]["files"]) == 120
    # staging and the lock are gone once committed
    left = fs.get_file_info(pafs.FileSelector("textcnn-it/scores", recursive=True))
    assert not [f.path for f in left if f.type == pafs.FileType.File and ("/_staging/" in f.path
                                                                          or "/_locks/" in f.path)]
