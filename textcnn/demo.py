"""The demo: train on the bundled Rotten Tomatoes sample, evaluate on its held-out part, and score a
corpus made of many copies of the held-out texts, reporting accuracy and scoring throughput."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from textcnn.config import ScoreConfig, TrainConfig
from textcnn.sample import SAMPLE_TEST, SAMPLE_TRAIN
from textcnn.scoring.run import RunSummary, score
from textcnn.training import plots
from textcnn.training.evaluate import evaluate_parquet
from textcnn.training.train import FitResult, fit

log = logging.getLogger(__name__)



def make_corpus(source: str, folder: str, copies: int, files: int = 8) -> int:
    """Write `copies` copies of source's (id, text) rows, ids made unique, over `files` files."""
    table = pq.read_table(source, columns=["id", "text"])
    os.makedirs(folder, exist_ok=True)
    per_file = max(1, copies // files)
    for f in range(0, copies, per_file):
        parts = [table.set_column(0, "id", pc.binary_join_element_wise(
                 table.column("id").cast(pa.string()), f"#{k}", ""))
                 for k in range(f, min(f + per_file, copies))]
        pq.write_table(pa.concat_tables(parts), os.path.join(folder, f"part-{f:05d}.parquet"))
    return table.num_rows * copies


@dataclass
class DemoResult:
    fit: FitResult
    evaluation: dict
    held_out: RunSummary
    corpus: RunSummary


def run(workdir: str, workers: int = 2, actors: int = 2, copies: int = 40) -> DemoResult:
    model = os.path.join(workdir, "model")
    trained = fit(TrainConfig(train=SAMPLE_TRAIN, output=model, workers=workers))
    report = evaluate_parquet(model, SAMPLE_TEST)
    with open(os.path.join(workdir, "eval.json"), "w") as f:
        json.dump(report, f, indent=2)
    plots.confusion_matrix(report, os.path.join(workdir, "eval_confusion.png"))
    held_out = score(ScoreConfig(model=model, input=SAMPLE_TEST, output=os.path.join(workdir, "output"),
                                 run_id="held-out", actors=actors))
    corpus_dir = os.path.join(workdir, "corpus")
    log.info("writing a corpus of %d rows to %s", make_corpus(SAMPLE_TEST, corpus_dir, copies), corpus_dir)
    corpus = score(ScoreConfig(model=model, input=corpus_dir, output=os.path.join(workdir, "output"),
                               run_id="corpus", actors=actors))
    return DemoResult(trained, report, held_out, corpus)
