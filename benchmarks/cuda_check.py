"""The pieces of jobs/cuda_check.py: the Ray-free core (tokenizer, model, train_epoch/evaluate,
artifacts, Scorer) on a GPU, timed. Nothing here imports Ray, so it runs on a GPU machine that has
only torch and pyarrow."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from textcnn.config import ModelConfig, TokenizerConfig, TrainConfig
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.text import Tokenizer, VocabBuilder
from textcnn.sample import SAMPLE_LABELS as LABELS
from textcnn.sample import SAMPLE_TEST, SAMPLE_TRAIN
from textcnn.scoring.scorer import Scorer
from textcnn.training.loop import Objective, evaluate, optimizer_and_schedule, train_epoch
from textcnn.training.metrics import classification_report


@dataclass
class SampleData:
    tokenizer: Tokenizer
    train_ids: np.ndarray      # (N, L) int
    train_labels: np.ndarray   # (N,) int
    test_ids: np.ndarray
    test_labels: np.ndarray
    test_texts: list[str]


def sample_data(max_length: int = 64) -> SampleData:
    train, test = pq.read_table(SAMPLE_TRAIN), pq.read_table(SAMPLE_TEST)
    builder = VocabBuilder(TokenizerConfig(max_length=max_length, split="words"))
    builder.update(train.column("text").to_pylist())
    tok = builder.build()

    def labels(t: Any) -> np.ndarray:
        return np.array([LABELS.index(str(v)) for v in t.column("label").to_pylist()])
    texts = test.column("text").to_pylist()
    return SampleData(tok, tok.encode(train.column("text").to_pylist()).astype(np.int64), labels(train),
                      tok.encode(texts).astype(np.int64), labels(test), texts)


def _batches(ids: torch.Tensor, labels: torch.Tensor, size: int, seed: int | None) -> list[dict]:
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(seed)) if seed is not None \
        else torch.arange(len(ids))
    order = order.to(ids.device)
    return [{"ids": ids[j], "label": labels[j]} for j in order.split(size)]


def train_on_gpu(data: SampleData, precision: str, epochs: int, output: str) -> dict[str, Any]:
    """Trains the default model on the sample on cuda:0 at precision; saves it to output."""
    device = torch.device("cuda")
    config = TrainConfig(train="sample", output=output, epochs=epochs, precision=precision)
    model_config = ModelConfig(vocab_size=len(data.tokenizer), num_classes=2, kernel_sizes=(3, 4, 5))
    torch.manual_seed(0)
    model = TextCNN(model_config).to(device)
    x, y = torch.from_numpy(data.train_ids).to(device), torch.from_numpy(data.train_labels).to(device)
    xt, yt = torch.from_numpy(data.test_ids).to(device), torch.from_numpy(data.test_labels).to(device)
    optimizer, scheduler = optimizer_and_schedule(model, config, -(-len(x) // config.batch_size))
    objective = Objective(multi_label=False)
    torch.cuda.synchronize()
    started = time.perf_counter()
    for epoch in range(epochs):
        train_epoch(model, _batches(x, y, config.batch_size, epoch), optimizer, objective, scheduler,
                    config.clip_norm, precision)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    _, y_true, probs = evaluate(model, _batches(xt, yt, 1024, None), objective, precision)
    report = classification_report(y_true, probs.argmax(axis=1), LABELS)
    artifacts.save(output, model.state_dict(), model_config, data.tokenizer, LABELS, report)
    return {"check": "train", "precision": precision, "epochs": epochs,
            "train_rows_per_s": round(epochs * len(x) / seconds), "held_out_accuracy": round(report["accuracy"], 4)}


def gpu_vs_cpu(model_dir: str, ids: np.ndarray) -> dict[str, Any]:
    """The GPU scorer (auto: bf16) against the CPU scorer (fp32) on the same rows."""
    gpu = Scorer(model_dir, use_gpu=True, precision="auto").probabilities(ids)
    cpu = Scorer(model_dir, use_gpu=False, threads=4, precision="fp32").probabilities(ids)
    return {"check": "gpu_bf16_vs_cpu_fp32", "rows": len(ids), "max_abs_diff": round(float(np.abs(gpu - cpu).max()), 5),
            "same_label_share": round(float((gpu.argmax(1) == cpu.argmax(1)).mean()), 5)}


def scorer_rate(model_dir: str, ids: np.ndarray, precision: str, chunk: int) -> dict[str, Any]:
    """Model-only rows/s of Scorer.probabilities on the GPU (host->device copy and back included)."""
    scorer = Scorer(model_dir, use_gpu=True, precision=precision)
    scorer.probabilities(ids[:chunk * 2], chunk)                       # warm-up: kernels, allocator
    torch.cuda.synchronize()
    started = time.perf_counter()
    for s in range(0, len(ids), 8192):                                 # the GPU actor's batch size
        scorer.probabilities(ids[s:s + 8192], chunk)
    seconds = time.perf_counter() - started
    return {"check": "scorer_rate", "precision": precision, "chunk": chunk, "rows": len(ids),
            "rows_per_s": round(len(ids) / seconds)}


def tokenize_and_score_rate(model_dir: str, texts: list[str], rows: int) -> dict[str, Any]:
    """One process: tokenize on the CPU, score on the GPU, in 8192-row batches; and the tokenizer alone."""
    scorer = Scorer(model_dir, use_gpu=True, precision="auto")
    batch = (texts * (8192 // len(texts) + 1))[:8192]
    n = max(1, rows // 8192)
    started = time.perf_counter()
    for _ in range(n):
        scorer.loaded.tokenizer.encode(batch)
    tokenize = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(n):
        scorer.probabilities(scorer.loaded.tokenizer.encode(batch))
    both = time.perf_counter() - started
    return {"check": "tokenize_and_score", "rows": n * 8192, "tokenize_rows_per_s": round(n * 8192 / tokenize),
            "tokenize_and_score_rows_per_s": round(n * 8192 / both)}
