"""s3:// in and out against a real S3 HTTP endpoint (moto's server) on loopback."""

import json

import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from textcnn import artifacts, storage
from textcnn.config import ScoreConfig, TrainConfig
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN
from textcnn.score import PRED_LABEL, PRED_PROB, score
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

    summary = score(ScoreConfig(model=model, input=f"{bucket}/corpus", output=f"{bucket}/scores", actors=2))
    scores = pads.dataset("textcnn-it/scores", filesystem=fs, format="parquet").to_table()
    assert summary.rows_in == summary.rows_out == scores.num_rows == 1200
    assert sorted(scores.column("id").to_pylist()) == sorted(test.column("id").to_pylist()[:1200])
    assert scores.schema.names == ["id", PRED_LABEL, PRED_PROB, "prob_fresh", "prob_rotten"]
    run_config = storage.read_text(f"{bucket}/scores/_score_config.json")
    assert s3.secret not in run_config and s3.key not in run_config
