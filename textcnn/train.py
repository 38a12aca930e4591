"""Training on Ray Train: a thin layer (train_func, fit) over the Ray-free core in textcnn.loop.

One code path from 1 to N workers, CPU or GPU: the same train_func runs under TorchTrainer with
ScalingConfig(num_workers, use_gpu); DDP comes from prepare_model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import ray.train
import ray.train.torch
import torch
from ray.data import Dataset
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from textcnn import artifacts, embeddings, plots, presets, runtime, storage
from textcnn.config import ModelConfig, TrainConfig, to_dict, train_config_from_dict
from textcnn.data import check_labelled, encode_labelled, read_labelled, survey
from textcnn.embeddings import apply_vectors
from textcnn.loop import Loop, Objective, _unwrap, optimizer_and_schedule, run_epochs
from textcnn.model import TextCNN
from textcnn.text import Tokenizer

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


def load_checkpoint(checkpoint: ray.train.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=True)


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
             ) -> tuple[int, list[dict]]:
    """Load the run's latest checkpoint if Ray Train resumed one: the next epoch and the history."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0, []
    state = load_checkpoint(checkpoint)
    _unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log.info("resumed from the checkpoint of epoch %d", state["epoch"])
    return state["epoch"] + 1, state["history"]


@contextlib.contextmanager
def state_dir(state: dict[str, Any]) -> Iterator[str]:
    """A temporary directory holding state as CHECKPOINT_FILE, for Train's and Tune's reports."""
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, CHECKPOINT_FILE))
        yield d


def _report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    """Every rank reports; only the rank that passes state attaches a checkpoint."""
    if state is None:
        ray.train.report(metrics)
        return
    with state_dir(state) as d:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def build_model(model_config: ModelConfig, config: TrainConfig, vectors: Any = None) -> TextCNN:
    """A fresh model, seeded, its embedding initialised from pre-trained vectors when given."""
    torch.manual_seed(config.seed)
    model = TextCNN(model_config)
    if vectors is not None:
        apply_vectors(model.embedding, vectors, config.freeze_embeddings)
    return model


def train_func(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker."""
    config = train_config_from_dict(loop_config["train"])
    model_config = ModelConfig(**loop_config["model"])
    vectors = ray.get(loop_config["vectors"]) if loop_config["vectors"] is not None else None
    torch.set_num_threads(max(1, int(config.cpus_per_worker)))
    model = ray.train.torch.prepare_model(build_model(model_config, config, vectors))
    ctx = ray.train.get_context()
    steps = -(-loop_config["train_rows"] // (config.batch_size * ctx.get_world_size()))
    optimizer, scheduler = optimizer_and_schedule(model, config, steps)
    device = ray.train.torch.get_device()
    label_dtype = torch.float32 if model_config.multi_label else torch.long
    as_tensors = dict(dtypes={"ids": torch.long, "label": label_dtype}, device=device)
    first_epoch, history = _restore(model, optimizer, scheduler)

    def train_batches(epoch: int):
        return ray.train.get_dataset_shard("train").iter_torch_batches(
            batch_size=config.batch_size, local_shuffle_buffer_size=4 * config.batch_size,
            local_shuffle_seed=config.seed + epoch, **as_tensors)

    def val_batches():
        return ray.train.get_dataset_shard("val").iter_torch_batches(batch_size=1024, **as_tensors)

    objective = Objective(model_config.multi_label, loop_config["class_weights"])
    run_epochs(model, optimizer, scheduler, objective, config,
               Loop(train_batches, val_batches, _report, loop_config["labels"],
                    saves_state=ctx.get_world_rank() == 0, history=history, first_epoch=first_epoch,
                    end_epoch=loop_config.get("end_epoch")))


@dataclass
class FitResult:
    output: str
    model_version: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    seconds: float
    refit: dict[str, Any] | None = None   # epochs, rows, train_loss of the refit on every row


def _scaling(config: TrainConfig) -> ScalingConfig:
    per_worker = {"CPU": config.cpus_per_worker}
    if config.use_gpu:
        per_worker["GPU"] = 1
    return ScalingConfig(num_workers=config.workers, use_gpu=config.use_gpu,
                         resources_per_worker=per_worker, placement_strategy=config.placement)


def run_name(config: TrainConfig) -> str:
    return config.run_name or f"textcnn-{os.path.basename(config.output.rstrip('/'))}-{int(time.time())}"


def _run_config(config: TrainConfig, name: str, keep_best: bool = True) -> RunConfig:
    """Checkpoints under storage_path/name: the best two by validation metric (keep_best) or the
    latest only (a refit, whose validation rows are training rows)."""
    storage_uri = config.storage_path or storage.join(storage.dirname(config.output), "_checkpoints")
    fs, path = storage.resolve(storage_uri)
    checkpoints = CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="val_metric",
                                   checkpoint_score_order="max") if keep_best else CheckpointConfig(num_to_keep=1)
    return RunConfig(name=name, storage_path=path, storage_filesystem=fs, checkpoint_config=checkpoints,
                     failure_config=FailureConfig(max_failures=config.max_failures))


@dataclass
class Prepared:
    """Everything a training run needs before the first step, resolved on the driver."""
    config: TrainConfig           # with the automatic choices filled in
    model_config: ModelConfig
    tokenizer: Tokenizer
    labels: list[str]
    class_weights: list[float] | None
    vectors: np.ndarray | None    # (V, E) initial embedding rows; NaN rows: not in the file
    train: Dataset                # encoded {"ids", "label"}, materialised
    val: Dataset
    train_rows: int


def prepare(config: TrainConfig) -> Prepared:
    """Read and survey the data, resolve the automatic choices, build the vocabulary, tokenize once."""
    check_labelled(config)
    runtime.ensure_ray()
    runtime.require(config.workers * config.cpus_per_worker, config.workers if config.use_gpu else 0,
                    f"training with {config.workers} worker(s)")
    train_ds, val_ds = read_labelled(config)
    found = survey(train_ds, config)
    config = presets.resolve(config, found)
    tokenizer = found.builder.build(config.tokenizer)
    vectors = embeddings.read_vectors(config.embeddings, tokenizer) if config.embeddings else None
    model_config = dataclasses.replace(
        config.model, vocab_size=len(tokenizer), num_classes=len(found.labels), multi_label=found.multi_label,
        embed_dim=config.model.embed_dim if vectors is None else vectors.shape[1])
    log.info("vocabulary of %d tokens (hash %s), %d %s classes: %s", len(tokenizer), tokenizer.hash(),
             len(found.labels), "multi-label" if found.multi_label else "single-label", found.labels)
    # Tokenize once, not once per epoch: training sets fit the object store (it spills to disk).
    encode = functools.partial(encode_labelled, tokenizer=tokenizer, labels=found.labels,
                               multi_label=found.multi_label, config=config)
    return Prepared(config, model_config, tokenizer, found.labels, presets.class_weights(config, found),
                    vectors, encode(train_ds).materialize(), encode(val_ds).materialize(), found.rows)


def _trainer(p: Prepared, config: TrainConfig, train: Dataset, rows: int, run_config: RunConfig,
             end_epoch: int | None = None) -> TorchTrainer:
    return TorchTrainer(
        train_func,
        train_loop_config={"train": to_dict(config), "model": to_dict(p.model_config), "labels": p.labels,
                           "class_weights": p.class_weights, "train_rows": rows, "end_epoch": end_epoch,
                           "vectors": None if p.vectors is None else ray.put(p.vectors)},
        scaling_config=_scaling(config), run_config=run_config,
        datasets={"train": train, "val": p.val},
        dataset_config=DataConfig(datasets_to_split=["train"]))  # every worker validates on all of val


def fit(config: TrainConfig) -> FitResult:
    """Train on Ray and export the model directory config.output: the best epoch on validation, or,
    with refit (validation carved from train), a model trained again on every row for that many epochs."""
    started = time.perf_counter()
    p = prepare(config)
    name = run_name(p.config)
    result = _trainer(p, p.config, p.train, p.train_rows, _run_config(p.config, name)).fit()
    best, _ = max(result.best_checkpoints, key=lambda cm: cm[1]["val_metric"])
    history = load_checkpoint(result.checkpoint)["history"]   # the latest checkpoint has every epoch
    state, refit = load_checkpoint(best), None
    if p.config.refit and p.config.val is None:
        state, refit = refit_all_rows(p, state, name)
    version, metrics = export_state(state, history, p, p.config, p.model_config, refit)
    return FitResult(p.config.output, version, metrics, history, time.perf_counter() - started, refit)


def refit_all_rows(p: Prepared, best: dict[str, Any], name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train a fresh model on train + validation with the same recipe, learning-rate schedule
    included, and stop it after the epoch early stopping picked: the model that was chosen, given
    the rows held out to choose it (the peers train on every row; the held-out 10% had cost about a
    point of test accuracy on the shared sets). Its own run (name-refit), so a killed refit resumes
    too. Returns the state to export (the refit weights beside the selection run's validation
    report) and what the refit did."""
    epochs = best["epoch"] + 1
    config = dataclasses.replace(p.config, patience=0)
    rows = p.train_rows + p.val.count()
    log.info("refit: %d epoch(s) on all %d rows (train + validation)", epochs, rows)
    result = _trainer(p, config, p.train.union(p.val), rows,
                      _run_config(config, f"{name}-refit", keep_best=False), end_epoch=epochs).fit()
    last = load_checkpoint(result.checkpoint)
    refit = {"epochs": epochs, "rows": rows, "train_loss": [h["train_loss"] for h in last["history"]],
             "attempt_start_epoch": last["history"][-1]["attempt_start_epoch"]}   # > 0: it was resumed
    return {**best, "model": last["model"]}, refit


def export_state(state: dict[str, Any], history: list[dict[str, Any]], p: Prepared, config: TrainConfig,
                 model_config: ModelConfig, refit: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Write a checkpoint's state as the model directory config.output, with its curves; returns
    the model version and the exported epoch's validation report (of the selection run, if refit)."""
    metrics = {**state["report"], "epoch": state["epoch"], "val_loss": history[state["epoch"]]["val_loss"]}
    extra = {"refit": refit} if refit else {}
    version = artifacts.save(config.output, state["model"], model_config, p.tokenizer, p.labels,
                             {"validation": metrics, "history": history, **extra}, to_dict(config),
                             thresholds=state["report"].get("thresholds"))
    plots.training_curves(history, storage.join(config.output, "curves.png"))
    return version, metrics
