"""The CLI and job scripts as a user runs them: separate processes, each starting its own local Ray."""

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from tests.procs import Jobs, train_killed_then_resumed
from tests.vectors import write_vectors
from textcnn.core import artifacts
from textcnn.core.text import split
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
TEXTCNN = [sys.executable, "-m", "textcnn"]


def run(args, cwd=ROOT, check=True, timeout=600):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}   # always a local Ray here
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}")
    return proc


@pytest.mark.parametrize("script", ["train", "score", "tune", "demo", "accuracy", "cuda_check", "gpu_check"])
def test_job_scripts_help(script):
    out = run([sys.executable, f"jobs/{script}.py", "--help"]).stdout
    assert "Usage:" in out and "--help" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_check_says_so_when_there_is_no_gpu():
    proc = run([sys.executable, "jobs/cuda_check.py"], check=False)
    assert proc.returncode == 1 and "cuda_check: torch sees no CUDA device" in proc.stderr


@pytest.mark.parametrize("command", [[], ["train"], ["score"], ["eval"], ["tune"], ["export"], ["explain"]])
def test_cli_help(command):
    from click.testing import CliRunner

    from textcnn.cli import main
    result = CliRunner().invoke(main, command + ["--help"])
    assert result.exit_code == 0 and "Usage:" in result.output and "--help" in result.output


def test_train_killed_and_resumed_then_eval(tmp_path):
    """Training SIGKILLed during its refit phase on every row resumes from local checkpoints: started
    again with the same run name, the finished selection phase is not trained again and the refit
    continues from its own last checkpoint; then eval. (A selection run resumed after `ray job stop`,
    from S3, and after losing a node: test_cluster.py. jobs/score.py as a process:
    test_nightly_kill.py.)"""
    model, report, data = tmp_path / "model", tmp_path / "eval.json", tmp_path / "train.parquet"
    checkpoints = tmp_path / "checkpoints"
    pq.write_table(pq.read_table(SAMPLE_TRAIN).slice(0, 3000), data)            # short epochs
    # a low rate keeps validation accuracy rising, so the picked epoch (and the refit) is not the first
    args = ["--train", str(data), "--output", str(model), "--workers", "1", "--epochs", "3",
            "--patience", "0", "--lr", "1e-3", "--filters", "32", "--embed-dim", "32", "--max-length", "32",
            "--ngram-buckets", "65536", "--refit-schedule", "picked",
            "--run-name", "cli", "--storage-path", str(checkpoints)]
    jobs = Jobs(tmp_path)
    try:
        [in_refit] = train_killed_then_resumed(jobs, args, [(str(checkpoints / "cli"), 0, "refit")])
    finally:
        jobs.stop_all()
    assert "written to" in jobs.log("last") and (model / "weights.pt").exists()
    # the branch started from naive Bayes counts; a resumed phase takes its weights from the checkpoint
    assert "n-gram branch: naive Bayes start" in jobs.log("attempt0")        # 2,700 rows: not a small set
    assert "n-gram branch:" not in jobs.log("last")
    # a person's output: a line per epoch, counted from 1, and none of Ray's internals (no --verbose)
    first = jobs.log("attempt0")
    assert re.search(r"epoch 1/3: train loss [0-9.]+, val loss [0-9.]+, accuracy [0-9.]+, macro-F1 [0-9.]+ \(", first)
    assert re.search(r"refit epoch [0-9]/[0-9]: train loss", jobs.log("last"))
    for noise in ("core_worker.cc", "TrainingReport(", "Traceback", "raylet", "(RayTrainWorker", "WARNING"):
        assert noise not in first and noise not in jobs.log("last"), noise
    metrics = json.loads((model / "metrics.json").read_text())
    assert [(h["epoch"], h["attempt_start_epoch"]) for h in metrics["history"]] == [(0, 0), (1, 0), (2, 0)]
    refit = metrics["refit"]
    assert refit["rows"] == 3000 and len(refit["train_loss"]) == refit["epochs"] >= 2
    assert refit["epochs"] == metrics["validation"]["epoch"] + 1
    assert in_refit + 1 <= refit["attempt_start_epoch"] < refit["epochs"]
    assert (model / "curves.png").read_bytes()[:4] == b"\x89PNG"
    printed = json.loads(run(TEXTCNN + ["eval", "--model", str(model), "--data", SAMPLE_TEST,
                                        "--output", str(report)]).stdout)
    assert printed == json.loads(report.read_text())
    assert printed["rows"] == 1275 and 0.6 < printed["accuracy"] <= 1.0
    assert set(printed["per_class"]) == {"fresh", "rotten"}
    assert all({"precision", "recall"} <= set(v) for v in printed["per_class"].values())
    assert sum(map(sum, printed["confusion_matrix"])) == 1275
    assert 0.5 < printed["roc_auc"] <= 1.0
    assert (tmp_path / "eval_confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_tune_runs_two_trials_and_exports_the_best(tmp_path):
    """Ray Tune over the training loop: two short trials under ASHA, the best one refit on every row
    and exported; with frozen pre-trained vectors (word2vec binary), whose size no trial draws."""
    model, data = tmp_path / "tuned", tmp_path / "train.parquet"
    pq.write_table(pq.read_table(SAMPLE_TRAIN).slice(0, 2000), data)            # short trials
    counts = Counter(w for text in pq.read_table(data).column("text").to_pylist() for w in split(text))
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=16).astype(np.float32) for w, _ in counts.most_common(300)}
    write_vectors(tmp_path / "vectors.bin", vectors, binary=True)
    out = run([sys.executable, "jobs/tune.py", "--train", str(data), "--output", str(model),
               "--samples", "2", "--epochs", "1", "--max-length", "32", "--val-fraction", "0.25",
               "--embeddings", str(tmp_path / "vectors.bin"), "--freeze-embeddings"]).stdout
    trials = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("trial ")]
    assert len(trials) == 2 and all(t["error"] is None and t["epochs"] >= 1 for t in trials)
    assert all(t["embed_dim"] == 16 for t in trials)                  # the file's, not a draw
    best = max(trials, key=lambda t: t["best_val_metric"])
    saved = json.loads((model / "config.json").read_text())
    assert saved["model"]["embed_dim"] == 16 and saved["model"]["num_filters"] == best["num_filters"]
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["validation"]["accuracy"] == pytest.approx(best["best_val_metric"])
    assert metrics["validation"]["rows"] == 500 and saved["train"]["val_fraction"] == 0.25   # of 2,000 rows
    # the best configuration trained again on all 2,000 rows for its best epoch count, then exported
    assert metrics["refit"]["rows"] == 2000 and metrics["refit"]["epochs"] == metrics["validation"]["epoch"] + 1
    assert len(metrics["refit"]["train_loss"]) == metrics["refit"]["epochs"]
    assert "refit on all 2000 rows for 1 epoch(s)" in out and "written to" in out
    # frozen through the trials and the refit: the file's words keep exactly the file's vectors
    loaded = artifacts.load(str(model))
    weight, index = loaded.model.embedding.weight.detach().numpy(), loaded.tokenizer.tokens
    kept = [(index.index(w), v) for w, v in vectors.items() if w in index]
    assert len(kept) >= 250
    for row, v in kept:
        np.testing.assert_array_equal(weight[row], v)


def test_missing_column_is_one_line_naming_the_file(tmp_path):
    proc = run(TEXTCNN + ["train", "--train", SAMPLE_TRAIN, "--output", str(tmp_path / "m"),
                          "--text-column", "body"], check=False)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"training data {SAMPLE_TRAIN} has no column(s) ['body']" in proc.stderr


def test_bad_model_directory_is_refused_before_scoring(tmp_path):
    proc = run(TEXTCNN + ["score", "--model", str(tmp_path / "nope"), "--input", SAMPLE_TEST,
                          "--output", str(tmp_path / "s")], check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'nope'}: not found" in proc.stderr


def test_export_and_explain(tiny_model_dir, tmp_path):
    out = run(TEXTCNN + ["export", "--model", tiny_model_dir, "--format", "torchscript",
                         "--output", str(tmp_path / "ts")]).stdout
    assert "torchscript model written to" in out and "max probability difference from PyTorch" in out
    rows = [json.loads(line) for line in run(TEXTCNN + ["explain", "--model", tiny_model_dir, "--text", "a good film",
                                                        "--text", "dull and slow", "-k", "2"]).stdout.splitlines()]
    assert [r["text"] for r in rows] == ["a good film", "dull and slow"]
    assert all(len(r["ngrams"]) == 2 and r["predicted_label"] in ("neg", "pos") for r in rows)
    proc = run(TEXTCNN + ["explain", "--model", str(tmp_path / "ts"), "--text", "a good film"], check=False)
    assert proc.returncode == 1 and "explanations need the PyTorch model directory" in proc.stderr
    proc = run(TEXTCNN + ["score", "--model", str(tmp_path / "ts"), "--input", SAMPLE_TEST, "--output",
                          str(tmp_path / "s"), "--run-id", "x", "--precision", "int8"], check=False)
    assert proc.returncode == 1 and "precision int8: needs the PyTorch model directory" in proc.stderr
    assert "Traceback" not in proc.stderr
