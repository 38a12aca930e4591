"""What `textcnn train` and `textcnn tune` share, on the driver and on Ray's workers.

On the driver, before the first step: the data survey and its automatic choices, the vocabulary and
the encoded datasets (prepare); where a run keeps its checkpoints, and their removal once the model
is written; the export of a checkpoint's state as the model directory. On a worker or trial: the
recipe a model is built from, a fresh model, and the state a checkpoint holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray.train
import torch
from ray.data import Dataset

from textcnn import runtime, storage
from textcnn.config import ModelConfig, TrainConfig, to_dict
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.text import Tokenizer
from textcnn.training import embeddings, plots, presets
from textcnn.training.data import check_labelled, encode_labelled, read_labelled, survey
from textcnn.training.embeddings import apply_vectors
from textcnn.training.loop import Objective

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"


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

    def recipe(self) -> Recipe:
        return Recipe(self.config, self.model_config, self.labels, self.class_weights)


@dataclass(frozen=True)
class Recipe:
    """What a Ray Train worker or a Ray Tune trial builds and trains its model from. The typed
    configs travel to Ray as they are: dataclasses pickle, so no dict round trip is needed."""
    config: TrainConfig
    model_config: ModelConfig
    labels: list[str]
    class_weights: list[float] | None


@dataclass
class Start:
    """A phase's model, optimizer, schedule and objective; restored from a checkpoint, also the
    epoch it goes on from and the history so far."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    objective: Objective
    first_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


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


def build_model(model_config: ModelConfig, config: TrainConfig, vectors: Any = None) -> TextCNN:
    """A fresh model, seeded, its embedding initialised from pre-trained vectors when given."""
    torch.manual_seed(config.seed)
    model = TextCNN(model_config)
    if vectors is not None:
        apply_vectors(model.embedding, vectors, config.freeze_embeddings)
    return model


def load_checkpoint(checkpoint: ray.train.Checkpoint) -> dict[str, Any]:
    """The state a Train or Tune checkpoint holds (CPU tensors: the driver may have no GPU)."""
    with checkpoint.as_directory() as d:
        return torch.load(os.path.join(d, CHECKPOINT_FILE), map_location="cpu", weights_only=True)


@contextlib.contextmanager
def state_dir(state: dict[str, Any]) -> Iterator[str]:
    """A temporary directory holding state as CHECKPOINT_FILE, for Train's and Tune's reports."""
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, os.path.join(d, CHECKPOINT_FILE))
        yield d


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


def forget_run(run_uri: str) -> None:
    """Remove a finished run's checkpoints: the model directory, written, holds its result, and
    a default run's name is new each time, so kept checkpoints (~140 MB a run) would only pile up.
    A run started again under the name then trains afresh."""
    try:
        storage.remove_tree(run_uri)
        log.info("run finished: removed its checkpoints at %s", run_uri)
    except storage.StorageError as e:         # the model is written: a leftover is not a failure
        log.warning("could not remove the finished run's checkpoints: %s", e)


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
