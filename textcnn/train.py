"""Training: a Ray-free core (train_epoch, evaluate) and a thin Ray Train layer (train_func, fit).

One code path from 1 to N workers, CPU or GPU: the same train_func runs under TorchTrainer with
ScalingConfig(num_workers, use_gpu); DDP comes from prepare_model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
import torch.nn.functional as F
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from textcnn import artifacts, runtime, storage
from textcnn.config import ModelConfig, TrainConfig, to_dict, train_config_from_dict
from textcnn.data import check_labelled, encode_labelled, read_labelled, vocabulary_and_labels
from textcnn.metrics import classification_report
from textcnn.model import TextCNN
from textcnn.text import trim

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]   # {"ids": (B, L) int64, "label": (B,) int64}


# ---- Ray-free core -------------------------------------------------------------------------

def _unwrap(model: torch.nn.Module) -> TextCNN:
    return model.module if hasattr(model, "module") else model


def train_epoch(model: torch.nn.Module, batches: Iterable[Batch],
                optimizer: torch.optim.Optimizer) -> float:
    """One pass over batches; returns the mean training loss."""
    model.train()
    min_len, total, n = _unwrap(model).min_length, 0.0, 0
    for batch in batches:
        logits = model(trim(batch["ids"], min_len))      # (B, C)
        loss = F.cross_entropy(logits, batch["label"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(batch["label"])
        n += len(batch["label"])
    return total / max(n, 1)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, batches: Iterable[Batch]) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean loss, true labels and predicted labels over batches."""
    model.eval()
    net, total, trues, preds = _unwrap(model), 0.0, [], []
    for batch in batches:
        logits = net(trim(batch["ids"], net.min_length))  # (B, C)
        total += F.cross_entropy(logits, batch["label"], reduction="sum").item()
        trues.append(batch["label"].cpu().numpy())
        preds.append(logits.argmax(dim=1).cpu().numpy())
    y_true = np.concatenate(trues) if trues else np.zeros(0, dtype=np.int64)
    y_pred = np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)
    return total / max(len(y_true), 1), y_true, y_pred


# ---- Ray Train layer -----------------------------------------------------------------------

CHECKPOINT_FILE = "checkpoint.pt"


def _load_state(checkpoint: ray.train.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=True)


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, list[dict]]:
    """Load the run's latest checkpoint if Ray Train resumed one: the next epoch and the history."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0, []
    state = _load_state(checkpoint)
    _unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    log.info("resumed from the checkpoint of epoch %d", state["epoch"])
    return state["epoch"] + 1, state["history"]


def _report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    """Every rank reports; only the rank that passes state attaches a checkpoint."""
    if state is None:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, CHECKPOINT_FILE))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def train_func(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    config = train_config_from_dict(loop_config["train"])
    model_config = ModelConfig(**loop_config["model"])
    labels = loop_config["labels"]
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, int(config.cpus_per_worker)))
    model = ray.train.torch.prepare_model(TextCNN(model_config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    device = ray.train.torch.get_device()
    rank = ray.train.get_context().get_world_rank()
    as_tensors = dict(dtypes={"ids": torch.long, "label": torch.long}, device=device)
    first_epoch, history = _restore(model, optimizer)
    for epoch in range(first_epoch, config.epochs):
        started = time.perf_counter()
        shard = ray.train.get_dataset_shard("train")
        train_loss = train_epoch(model, shard.iter_torch_batches(
            batch_size=config.batch_size, local_shuffle_buffer_size=4 * config.batch_size,
            local_shuffle_seed=config.seed + epoch, **as_tensors), optimizer)
        val = ray.train.get_dataset_shard("val").iter_torch_batches(batch_size=1024, **as_tensors)
        val_loss, y_true, y_pred = evaluate(model, val)
        report = classification_report(y_true, y_pred, labels)
        metrics = {"epoch": epoch, "attempt_start_epoch": first_epoch,
                   "train_loss": train_loss, "val_loss": val_loss,
                   "val_acc": report["accuracy"], "val_macro_f1": report["macro_f1"],
                   "epoch_seconds": time.perf_counter() - started}
        history.append(metrics)
        state = None
        if rank == 0:
            state = {"model": _unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
                     "epoch": epoch, "report": report, "history": history}
        _report(metrics, state)


@dataclass
class FitResult:
    output: str
    model_version: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float


def _scaling(config: TrainConfig) -> ScalingConfig:
    per_worker = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        per_worker["GPU"] = 1
    return ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu,
                         resources_per_worker=per_worker, placement_strategy=config.placement)


def _run_config(config: TrainConfig) -> RunConfig:
    storage_uri = config.storage_path or storage.join(storage.dirname(config.output), "_checkpoints")
    fs, path = storage.resolve(storage_uri)
    name = config.run_name or f"textcnn-{os.path.basename(config.output.rstrip('/'))}-{int(time.time())}"
    return RunConfig(name=name, storage_path=path, storage_filesystem=fs,
                     checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_acc",
                                                        checkpoint_score_order="max"),
                     failure_config=FailureConfig(max_failures=config.max_failures))


def fit(config: TrainConfig) -> FitResult:
    """Train on Ray and export the best epoch as the model directory config.output."""
    started = time.perf_counter()
    check_labelled(config)
    runtime.ensure_ray()
    runtime.require(config.workers * config.cpus_per_worker, config.workers if config.use_gpu else 0,
                    f"training with {config.workers} worker(s)")
    train_ds, val_ds = read_labelled(config)
    tokenizer, labels = vocabulary_and_labels(train_ds, config)
    model_config = dataclasses.replace(config.model, vocab_size=len(tokenizer), num_classes=len(labels))
    log.info("vocabulary of %d tokens (hash %s), %d classes: %s", len(tokenizer), tokenizer.hash(),
             len(labels), labels)
    # Tokenize once, not once per epoch: training sets fit the object store (it spills to disk).
    datasets = {"train": encode_labelled(train_ds, tokenizer, labels, config).materialize(),
                "val": encode_labelled(val_ds, tokenizer, labels, config).materialize()}
    trainer = TorchTrainer(
        train_func,
        train_loop_config={"train": to_dict(config), "model": to_dict(model_config), "labels": labels},
        scaling_config=_scaling(config), run_config=_run_config(config), datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train"]))  # every worker validates on all of val
    result = trainer.fit()
    best, best_metrics = max(result.best_checkpoints, key=lambda cm: cm[1]["val_acc"])
    state = _load_state(best)
    history = _load_state(result.checkpoint)["history"]   # the latest checkpoint has every epoch
    metrics = {**state["report"], "epoch": state["epoch"], "val_loss": best_metrics["val_loss"]}
    version = artifacts.save(config.output, state["model"], model_config, tokenizer, labels,
                             {"validation": metrics, "history": history}, to_dict(config))
    return FitResult(config.output, version, metrics, history, time.perf_counter() - started)
