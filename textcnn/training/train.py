"""Training on Ray Train: a thin layer (train_func, fit) over the Ray-free core in textcnn.training.loop.

One code path from 1 to N workers, CPU or GPU: the same train_func runs under TorchTrainer with
ScalingConfig(num_workers, use_gpu); DDP comes from prepare_model. What `textcnn tune` shares with
it (the preparation on the driver, a fresh model, checkpoint state, the export) is in
textcnn.training.prepare, and the refit phase's loop in textcnn.training.refit.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch
from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from textcnn import console, runtime, storage
from textcnn.config import TrainConfig
from textcnn.training import resume
from textcnn.training.loop import Batch, EarlyStopping, Loop, Objective, optimizer_and_schedule, run_epochs, unwrap
from textcnn.training.ngram_start import init_ngrams
from textcnn.training.prepare import (
    Prepared,
    Recipe,
    Start,
    build_model,
    export_state,
    forget_run,
    load_checkpoint,
    prepare,
    state_dir,
    storage_root,
)
from textcnn.training.refit import epochs_to_refit, refit, summary

log = logging.getLogger(__name__)

SELECT, REFIT = "select", "refit"


@dataclass
class WorkerPlan:
    """What train_func needs on every worker, resolved on the driver. TorchTrainer hands train_func
    its train_loop_config, a dict: the plan travels in it, typed, under PLAN_KEY."""
    recipe: Recipe
    vectors: ray.ObjectRef | None   # the (V, E) initial embedding rows, put in the object store once
    train_rows: int
    refit_rows: int                 # train + validation rows of the refit phase; 0: no refit
    feed: Any                       # a runtime.LogFeed's queue: where rank 0's log lines go


PLAN_KEY = "plan"


def _restore(state: dict[str, Any] | None, start: Start) -> Start:
    """Load a checkpoint's state, if any, into the phase being set up: the next epoch and the history."""
    if state is None:
        return start
    unwrap(start.model).load_state_dict(state["model"])
    start.optimizer.load_state_dict(state["optimizer"])
    start.scheduler.load_state_dict(state["scheduler"])
    log.info("resumed the %s phase from the checkpoint of its epoch %d", state.get("phase", SELECT), state["epoch"])
    start.first_epoch, start.history = state["epoch"] + 1, state["history"]
    return start


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


class _Worker:
    """What every phase of train_func builds the same way on a Ray Train worker."""

    def __init__(self, plan: WorkerPlan) -> None:
        self.plan = plan
        self.config, self.model_config = plan.recipe.config, plan.recipe.model_config
        self.vectors = ray.get(plan.vectors) if plan.vectors is not None else None
        self.rank0 = ray.train.get_context().get_world_rank() == 0
        if self.rank0:
            runtime.forward_logs(plan.feed)
        self.objective = Objective(self.model_config.multi_label, plan.recipe.class_weights)
        label_dtype = torch.float32 if self.model_config.multi_label else torch.long
        self.as_tensors = dict(dtypes={"ids": torch.long, "label": label_dtype}, device=ray.train.torch.get_device())

    def setup(self, dataset: str, rows: int, state: dict[str, Any] | None) -> Start:
        """A fresh DDP model, its optimizer and schedule for rows per epoch of dataset, resumed from
        state; without state, the n-gram branch starts from dataset (ngram_start: naive Bayes or
        logistic regression, IDF)."""
        model = build_model(self.model_config, self.config, self.vectors)
        if state is None:
            init_ngrams(model, ray.train.get_dataset_shard(dataset).iter_torch_batches(
                batch_size=4096, dtypes=self.as_tensors["dtypes"], device="cpu"), self.objective,
                reduce=_sum_over_workers, start=self.config.ngram_init)
        model = ray.train.torch.prepare_model(model)
        steps = -(-rows // (self.config.batch_size * ray.train.get_context().get_world_size()))
        optimizer, scheduler = optimizer_and_schedule(model, self.config, steps)
        return _restore(state, Start(model, optimizer, scheduler, self.objective))

    def batches(self, dataset: str) -> Callable[[int], Iterable[Batch]]:
        def per_epoch(epoch: int) -> Iterable[Batch]:
            return ray.train.get_dataset_shard(dataset).iter_torch_batches(
                batch_size=self.config.batch_size, local_shuffle_buffer_size=4 * self.config.batch_size,
                local_shuffle_seed=self.config.seed + epoch, **self.as_tensors)
        return per_epoch

    def val_batches(self) -> Iterable[Batch]:
        return ray.train.get_dataset_shard("val").iter_torch_batches(batch_size=1024, **self.as_tensors)


def _sum_over_workers(counts: torch.Tensor) -> torch.Tensor:
    """counts summed over the worker group (on the device: NCCL reduces GPU tensors only)."""
    if ray.train.get_context().get_world_size() == 1:
        return counts
    on_device = counts.to(ray.train.torch.get_device())
    torch.distributed.all_reduce(on_device)
    return on_device.cpu()


def train_func(loop_config: dict[str, WorkerPlan]) -> None:
    """Runs on every Ray Train worker: the selection phase (train, validate each epoch, stop early),
    then, when the plan has refit rows, the refit phase in the same worker group (no second start
    of Ray Train): a fresh model trained on train + validation for the picked epoch count."""
    w = _Worker(loop_config[PLAN_KEY])
    torch.set_num_threads(max(1, int(w.config.cpus_per_worker)))
    latest = ray.train.get_checkpoint()
    state = load_checkpoint(latest) if latest is not None else None
    if state is None or state.get("phase", SELECT) == SELECT:
        selection, state = _select(w, state), None
    else:
        selection = state["selection_history"]
    if w.plan.refit_rows:
        _refit(w, selection, state)


def _select(w: _Worker, state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Train, validate after each epoch, stop early; returns the history of every epoch."""
    start = w.setup("train", w.plan.train_rows, state)
    report = functools.partial(_report, epochs=w.config.epochs)
    return run_epochs(start.model, start.optimizer, start.scheduler, start.objective, w.config,
                      Loop(w.batches("train"), w.val_batches, report, w.plan.recipe.labels,
                           saves_state=w.rank0, history=start.history, first_epoch=start.first_epoch))


def _refit(w: _Worker, selection: list[dict[str, Any]], state: dict[str, Any] | None) -> None:
    """The refit phase (textcnn.training.refit), stopped after the epoch early stopping picked (or
    every epoch of the schedule, refit_schedule "full"). Its
    checkpoints rank below every selection checkpoint (see _report): the best two of those stay
    kept, and Ray Train always keeps the latest, from which a killed refit resumes."""
    epochs = epochs_to_refit(w.config, EarlyStopping.replay(w.config.patience, selection).best_epoch + 1)
    start = w.setup("all", w.plan.refit_rows, state)
    report = functools.partial(_report, phase=REFIT, selection_history=selection, epochs=epochs)
    refit(start, w.config, w.batches("all"), w.plan.recipe.labels, epochs, report, saves_state=w.rank0)


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


def _start_run(p: Prepared) -> tuple[str, str]:
    """The run's name and folder, checked against (or recorded in) its record (see resume.py)."""
    name = run_name(p.config)
    run_uri = storage.join(storage_root(p.config), name)
    if not resume.check_or_record(run_uri, resume.fingerprint(p.tokenizer, p.labels, p.model_config)):
        log.info("checkpoints of run %s go to %s (killed, it resumes when started again with --run-name %s)",
                 name, run_uri, name)
    return name, run_uri


def _run_config(config: TrainConfig, name: str) -> RunConfig:
    """Checkpoints under storage_path/name: the best two selection epochs by validation metric
    (_report's rank), and always the latest (Ray Train keeps it whatever its rank)."""
    fs, path = storage.resolve(storage_root(config))
    checkpoints = CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="rank",
                                   checkpoint_score_order="max")
    return RunConfig(name=name, storage_path=path, storage_filesystem=fs, checkpoint_config=checkpoints,
                     failure_config=FailureConfig(max_failures=config.max_failures))


def _trainer(p: Prepared, run_config: RunConfig, refit_rows: int, feed: runtime.LogFeed) -> TorchTrainer:
    """refit_rows: train + validation rows of the refit phase (0: no refit); feed: where rank 0's
    log lines go."""
    datasets = {"train": p.train, "val": p.val}
    if refit_rows:
        datasets["all"] = p.train.union(p.val)
    plan = WorkerPlan(p.recipe(), None if p.vectors is None else ray.put(p.vectors), p.train_rows, refit_rows,
                      feed.queue)
    return TorchTrainer(
        train_func, train_loop_config={PLAN_KEY: plan},
        scaling_config=_scaling(p.config), run_config=run_config, datasets=datasets,
        dataset_config=DataConfig(datasets_to_split=["train", "all"] if refit_rows else ["train"]))  # all of val


def _exported(result: ray.train.Result, refit_rows: int) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                  dict[str, Any] | None]:
    """The state to export from a finished run, the selection's history, and the refit's summary:
    the best selection epoch's state, its weights the refit's when the run refit."""
    latest = load_checkpoint(result.checkpoint)
    selection = [(c, m) for c, m in result.best_checkpoints if m.get("phase", SELECT) == SELECT]
    # ties go to the earlier epoch, as in early stopping
    best, _ = max(selection, key=lambda cm: (cm[1]["val_metric"], -cm[1]["epoch"]))
    state = load_checkpoint(best)
    if latest.get("phase") != REFIT:
        return state, latest["history"], None                  # the latest checkpoint has every epoch
    done = {**summary(latest["history"], refit_rows),
            "attempt_start_epoch": latest["history"][-1]["attempt_start_epoch"]}  # > 0: resumed
    log.debug("refit on all %d rows for %d epoch(s)", done["rows"], done["epochs"])
    return {**state, "model": latest["model"]}, latest["selection_history"], done


def fit(config: TrainConfig) -> FitResult:
    """Train on Ray and export the model directory config.output: the best epoch on validation, or,
    with refit (validation carved from train), a model trained again on every row for that many
    epochs (train_func's refit phase, textcnn.training.refit)."""
    started = time.perf_counter()
    p = prepare(config)
    refit_rows = p.train_rows + p.val.count() if p.config.refits else 0
    name, run_uri = _start_run(p)
    with runtime.LogFeed() as feed:
        result = _trainer(p, _run_config(p.config, name), refit_rows, feed).fit()
    state, history, refit_done = _exported(result, refit_rows)
    version, metrics = export_state(state, history, p, p.config, p.model_config, refit_done)
    forget_run(run_uri)
    return FitResult(p.config.output, version, metrics, history, time.perf_counter() - started, refit_done)
