"""Training on Ray Train: a thin layer (train_func, fit) over the Ray-free core in textcnn.training.loop.

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

from textcnn import console, runtime, storage
from textcnn.config import ModelConfig, TrainConfig, to_dict, train_config_from_dict
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.text import Tokenizer
from textcnn.training import embeddings, plots, presets, resume
from textcnn.training.data import check_labelled, encode_labelled, read_labelled, survey
from textcnn.training.embeddings import apply_vectors
from textcnn.training.loop import (
    EarlyStopping,
    Loop,
    Objective,
    optimizer_and_schedule,
    run_epochs,
    run_train_epochs,
    unwrap,
)
from textcnn.training.naive_bayes import init_ngrams

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


def load_checkpoint(checkpoint: ray.train.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=True)


def _restore(state: dict[str, Any] | None, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             scheduler: Any) -> tuple[int, list[dict]]:
    """Load a checkpoint's state, if any, into the phase being set up: the next epoch and the history."""
    if state is None:
        return 0, []
    unwrap(model).load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log.info("resumed the %s phase from the checkpoint of its epoch %d", state.get("phase", SELECT), state["epoch"])
    return state["epoch"] + 1, state["history"]


@contextlib.contextmanager
def state_dir(state: dict[str, Any]) -> Iterator[str]:
    """A temporary directory holding state as CHECKPOINT_FILE, for Train's and Tune's reports."""
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, CHECKPOINT_FILE))
        yield d


SELECT, REFIT = "select", "refit"


def _report(metrics: dict[str, Any], state: dict[str, Any] | None, phase: str = SELECT,
            epochs: int = 0, **extra: Any) -> None:
    """Every rank reports; only the rank that passes state attaches a checkpoint, and logs the
    epoch's line (which runtime.forward_logs sends to the driver). Metrics and state carry the
    phase, so a resumed run knows where it was."""
    if state is not None:
        log.info(console.epoch_line(metrics, phase, epochs))
    # a refit epoch has no validation; it ranks below every selection epoch (metrics are in [0, 1])
    metrics = {**metrics, "phase": phase, "rank": metrics["val_metric"] if phase == SELECT else -1.0}
    if state is None:
        ray.train.report(metrics)
        return
    with state_dir({**state, "phase": phase, **extra}) as d:
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(d))


def build_model(model_config: ModelConfig, config: TrainConfig, vectors: Any = None) -> TextCNN:
    """A fresh model, seeded, its embedding initialised from pre-trained vectors when given."""
    torch.manual_seed(config.seed)
    model = TextCNN(model_config)
    if vectors is not None:
        apply_vectors(model.embedding, vectors, config.freeze_embeddings)
    return model


class _Worker:
    """What every phase of train_func builds the same way on a Ray Train worker."""

    def __init__(self, loop_config: dict[str, Any]) -> None:
        self.lc = loop_config
        self.config = train_config_from_dict(loop_config["train"])
        self.model_config = ModelConfig(**loop_config["model"])
        self.vectors = ray.get(loop_config["vectors"]) if loop_config["vectors"] is not None else None
        self.rank0 = ray.train.get_context().get_world_rank() == 0
        if self.rank0:
            runtime.forward_logs(loop_config.get("feed"))
        self.objective = Objective(self.model_config.multi_label, loop_config["class_weights"])
        label_dtype = torch.float32 if self.model_config.multi_label else torch.long
        self.as_tensors = dict(dtypes={"ids": torch.long, "label": label_dtype}, device=ray.train.torch.get_device())

    def setup(self, dataset: str, rows: int, state: dict[str, Any] | None):
        """A fresh DDP model, its optimizer and schedule for rows per epoch of dataset, resumed from
        state; without state, the n-gram branch starts from counts over dataset (naive Bayes, IDF)."""
        model = build_model(self.model_config, self.config, self.vectors)
        if state is None:
            init_ngrams(model, ray.train.get_dataset_shard(dataset).iter_torch_batches(
                batch_size=4096, dtypes=self.as_tensors["dtypes"], device="cpu"), self.model_config.multi_label,
                reduce=_sum_over_workers, naive_bayes=self.config.ngram_init == "naive_bayes")
        model = ray.train.torch.prepare_model(model)
        steps = -(-rows // (self.config.batch_size * ray.train.get_context().get_world_size()))
        optimizer, scheduler = optimizer_and_schedule(model, self.config, steps)
        return model, optimizer, scheduler, *_restore(state, model, optimizer, scheduler)

    def batches(self, dataset: str):
        def per_epoch(epoch: int):
            return ray.train.get_dataset_shard(dataset).iter_torch_batches(
                batch_size=self.config.batch_size, local_shuffle_buffer_size=4 * self.config.batch_size,
                local_shuffle_seed=self.config.seed + epoch, **self.as_tensors)
        return per_epoch

    def val_batches(self):
        return ray.train.get_dataset_shard("val").iter_torch_batches(batch_size=1024, **self.as_tensors)


def _sum_over_workers(counts: torch.Tensor) -> torch.Tensor:
    """counts summed over the worker group (on the device: NCCL reduces GPU tensors only)."""
    if ray.train.get_context().get_world_size() == 1:
        return counts
    on_device = counts.to(ray.train.torch.get_device())
    torch.distributed.all_reduce(on_device)
    return on_device.cpu()


def train_func(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker: the selection phase (train, validate each epoch, stop early),
    then, when loop_config["refit_rows"], the refit phase in the same worker group (no second start
    of Ray Train): a fresh model trained on train + validation for the picked epoch count."""
    w = _Worker(loop_config)
    torch.set_num_threads(max(1, int(w.config.cpus_per_worker)))
    latest = ray.train.get_checkpoint()
    state = load_checkpoint(latest) if latest is not None else None
    if state is None or state.get("phase", SELECT) == SELECT:
        selection, state = _select(w, state), None
    else:
        selection = state["selection_history"]
    if loop_config["refit_rows"]:
        _refit(w, selection, state)


def _select(w: _Worker, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Train, validate after each epoch, stop early; returns the history of every epoch."""
    model, optimizer, scheduler, first, history = w.setup("train", w.lc["train_rows"], state)
    report = functools.partial(_report, epochs=w.config.epochs)
    return run_epochs(model, optimizer, scheduler, w.objective, w.config,
                      Loop(w.batches("train"), w.val_batches, report, w.lc["labels"],
                           saves_state=w.rank0, history=history, first_epoch=first))


def _refit(w: _Worker, selection: list[dict[str, Any]], state: dict[str, Any] | None) -> None:
    """Train a fresh model on every row, same recipe and learning-rate schedule, and stop it after
    the epoch early stopping picked. Its checkpoints rank below every selection checkpoint (see
    _report): the best two of those stay kept, and Ray Train always keeps the latest, from which a
    killed refit resumes."""
    epochs = EarlyStopping.replay(w.config.patience, selection).best_epoch + 1
    model, optimizer, scheduler, first, history = w.setup("all", w.lc["refit_rows"], state)
    report = functools.partial(_report, phase=REFIT, selection_history=selection, epochs=epochs)
    run_train_epochs(model, optimizer, scheduler, w.objective, w.config,
                     Loop(w.batches("all"), None, report, w.lc["labels"], saves_state=w.rank0,
                          history=history, first_epoch=first, end_epoch=epochs))


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


def storage_root(config: TrainConfig, kind: str = "checkpoints") -> str:
    """Where runs keep their checkpoints: --storage-path; else, for a remote model directory,
    beside it (s3://bucket/models/_checkpoints, which every node reaches); else the user's cache
    (~/.cache/textcnn/checkpoints). Never the working directory: `ray job submit --working-dir .`
    uploads it, at most 100 MiB, and a default model's two checkpoints on the bundled sample took
    139 MB of models/_checkpoints beside the README's models/rt."""
    if config.storage_path:
        return config.storage_path
    if storage.is_remote(config.output):
        return storage.join(storage.dirname(config.output), f"_{kind}")
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "textcnn", kind)


def _start_run(p: Prepared) -> tuple[str, str]:
    """The run's name and folder, checked against (or recorded in) its record (see resume.py)."""
    name = run_name(p.config)
    run_uri = storage.join(storage_root(p.config), name)
    if not resume.check_or_record(run_uri, resume.fingerprint(p.tokenizer, p.labels, p.model_config)):
        log.info("checkpoints of run %s go to %s (killed, it resumes when started again with --run-name %s)",
                 name, run_uri, name)
    return name, run_uri


def forget_run(run_uri: str) -> None:
    """Remove a finished run's checkpoints: the model directory, written, holds its result, and
    a default run's name is new each time, so kept checkpoints (~140 MB a run) would only pile up.
    A run started again under the name then trains afresh."""
    try:
        storage.remove_tree(run_uri)
        log.info("run finished: removed its checkpoints at %s", run_uri)
    except storage.StorageError as e:         # the model is written: a leftover is not a failure
        log.warning("could not remove the finished run's checkpoints: %s", e)


def _run_config(config: TrainConfig, name: str) -> RunConfig:
    """Checkpoints under storage_path/name: the best two selection epochs by validation metric
    (_report's rank), and always the latest (Ray Train keeps it whatever its rank)."""
    fs, path = storage.resolve(storage_root(config))
    checkpoints = CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="rank",
                                   checkpoint_score_order="max")
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


def _trainer(p: Prepared, run_config: RunConfig, refit_rows: int, feed: runtime.LogFeed) -> TorchTrainer:
    """refit_rows: train + validation rows of the refit phase (0: no refit); feed: where rank 0's
    log lines go."""
    datasets = {"train": p.train, "val": p.val}
    if refit_rows:
        datasets["all"] = p.train.union(p.val)
    return TorchTrainer(
        train_func,
        train_loop_config={"train": to_dict(p.config), "model": to_dict(p.model_config), "labels": p.labels,
                           "class_weights": p.class_weights, "train_rows": p.train_rows,
                           "refit_rows": refit_rows, "feed": feed.queue,
                           "vectors": None if p.vectors is None else ray.put(p.vectors)},
        scaling_config=_scaling(p.config), run_config=run_config, datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train", "all"] if refit_rows else ["train"]))  # all of val


def fit(config: TrainConfig) -> FitResult:
    """Train on Ray and export the model directory config.output: the best epoch on validation, or,
    with refit (validation carved from train), a model trained again on every row for that many
    epochs (train_func's refit phase: the peers train on every row, and the held-out 10% had cost
    about a point of test accuracy on the shared sets)."""
    started = time.perf_counter()
    p = prepare(config)
    refit_rows = p.train_rows + p.val.count() if p.config.refits else 0
    name, run_uri = _start_run(p)
    with runtime.LogFeed() as feed:
        result = _trainer(p, _run_config(p.config, name), refit_rows, feed).fit()
    latest = load_checkpoint(result.checkpoint)
    selection = [(c, m) for c, m in result.best_checkpoints if m.get("phase", SELECT) == SELECT]
    # ties go to the earlier epoch, as in early stopping
    best, _ = max(selection, key=lambda cm: (cm[1]["val_metric"], -cm[1]["epoch"]))
    state, refit_done = load_checkpoint(best), None
    history = latest["history"]                                # the latest checkpoint has every epoch
    if latest.get("phase") == REFIT:
        history, state = latest["selection_history"], {**state, "model": latest["model"]}
        refit_done = {"epochs": len(latest["history"]), "rows": refit_rows,
                      "train_loss": [h["train_loss"] for h in latest["history"]],
                      "attempt_start_epoch": latest["history"][-1]["attempt_start_epoch"]}  # > 0: resumed
        log.debug("refit on all %d rows for %d epoch(s)", refit_done["rows"], refit_done["epochs"])
    version, metrics = export_state(state, history, p, p.config, p.model_config, refit_done)
    forget_run(run_uri)
    return FitResult(p.config.output, version, metrics, history, time.perf_counter() - started, refit_done)


def export_state(state: dict[str, Any], history: list[dict[str, Any]], p: Prepared, config: TrainConfig,
                 model_config: ModelConfig, refit: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Write a checkpoint's state as the model directory config.output, with its curves; returns
    the model version and the exported epoch's validation report (of the selection run, if refit)."""
    metrics = {**state["report"], "epoch": state["epoch"], "val_loss": history[state["epoch"]]["val_loss"]}
    extra = {"refit": refit} if refit else {}
    version = artifacts.save(config.output, state["model"], model_config, p.tokenizer, p.labels,
                             {"validation": metrics, "history": history, **extra}, to_dict(config),
                             thresholds=state["report"].get("thresholds"))
    plots.training_curves(history, storage.join(config.output, "curves.png"), chosen=state["epoch"])
    return version, metrics
