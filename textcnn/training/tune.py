"""Hyperparameter search with Ray Tune over the Ray-free training loop, with ASHA early stopping.

Each trial is one process training one model (`textcnn.training.loop.run_epochs`, the loop Ray Train's
workers run) on the same tokenized data, put once in the object store. ASHA stops trials whose
validation metric trails the others' at the same epoch. The best trial's configuration is then
trained again on every row (train + validation) for its best epoch count, as `textcnn train`
refits, in one more Ray task, and exported as a model directory like `textcnn train` writes; with
refit off (or a given validation set) the best trial's best epoch itself is exported.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
import torch
from ray import tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search.basic_variant import BasicVariantGenerator

from textcnn import storage
from textcnn.config import ModelConfig, TrainConfig
from textcnn.training import prepare as shared  # what train.py prepares, builds, checkpoints and exports alike
from textcnn.training.loop import Batch, Loop, Objective, optimizer_and_schedule, run_epochs
from textcnn.training.ngram_start import init_ngrams
from textcnn.training.refit import epochs_to_refit, refit, summary

log = logging.getLogger(__name__)

# The search space: embedding size, widths, filters, dropout, learning rate.
SPACE: dict[str, Any] = {
    "embed_dim": tune.choice([64, 128, 256]),
    "kernel_sizes": tune.choice([(1, 2, 3), (2, 3, 4), (3, 4, 5)]),
    "num_filters": tune.choice([64, 100, 200]),
    "dropout": tune.uniform(0.2, 0.6),
    "lr": tune.loguniform(5e-4, 1e-2),
}


def search_space(embed_dim: int | None) -> dict[str, Any]:
    """SPACE; with pre-trained vectors their dimension is the embedding size, not a draw."""
    return SPACE if embed_dim is None else {**SPACE, "embed_dim": embed_dim}


@dataclass
class TrialSetup:
    """What every trial (and the best one's refit) starts from, resolved on the driver; Tune puts it
    in the object store once (tune.with_parameters)."""
    recipe: shared.Recipe
    vectors: np.ndarray | None     # (V, E) initial embedding rows
    cpus_per_trial: float


def _arrays(ds: Any) -> dict[str, np.ndarray]:
    batches = list(ds.iter_batches(batch_size=8192, batch_format="numpy"))
    return {k: np.concatenate([b[k] for b in batches]) for k in ("ids", "label")}


def _batches(data: dict[str, np.ndarray], batch_size: int, seed: int | None) -> list[dict[str, torch.Tensor]]:
    order = np.arange(len(data["ids"])) if seed is None else np.random.default_rng(seed).permutation(len(data["ids"]))
    return [{"ids": torch.from_numpy(data["ids"][rows]).long(), "label": torch.from_numpy(data["label"][rows])}
            for rows in np.array_split(order, max(1, -(-len(order) // batch_size)))]


def trial_configs(trial: dict[str, Any], base: TrainConfig,
                  model_config: ModelConfig) -> tuple[TrainConfig, ModelConfig]:
    """The trial's sampled hyperparameters over the run's resolved configs."""
    model = dataclasses.replace(model_config, embed_dim=trial["embed_dim"], num_filters=trial["num_filters"],
                                kernel_sizes=tuple(trial["kernel_sizes"]), dropout=trial["dropout"])
    return dataclasses.replace(base, lr=trial["lr"], model=model), model


def _tune_report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    with shared.state_dir(state) as d:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _setup(trial: dict[str, Any], setup: TrialSetup, train: dict[str, np.ndarray]) -> tuple[TrainConfig, shared.Start]:
    """The trial's configs, and a fresh model (n-gram branch from train's counts), optimizer and schedule."""
    config, model_config = trial_configs(trial, setup.recipe.config, setup.recipe.model_config)
    torch.set_num_threads(max(1, int(setup.cpus_per_trial)))
    model = shared.build_model(model_config, config, setup.vectors)
    objective = Objective(model_config.multi_label, setup.recipe.class_weights)
    init_ngrams(model, _batches(train, 4096, None), objective, start=config.ngram_init)
    optimizer, scheduler = optimizer_and_schedule(model, config, -(-len(train["ids"]) // config.batch_size))
    return config, shared.Start(model, optimizer, scheduler, objective)


def _train_batches(data: dict[str, np.ndarray], config: TrainConfig) -> Callable[[int], list[Batch]]:
    return lambda epoch: _batches(data, config.batch_size, config.seed + epoch)


def trainable(trial: dict[str, Any], setup: TrialSetup, train: dict[str, np.ndarray],
              val: dict[str, np.ndarray]) -> None:
    """One trial: the same loop as a Ray Train worker, on in-memory batches."""
    config, start = _setup(trial, setup, train)
    loop = Loop(_train_batches(train, config), lambda: _batches(val, 1024, None), _tune_report, setup.recipe.labels)
    run_epochs(start.model, start.optimizer, start.scheduler, start.objective, config, loop)


def refit_trial(trial: dict[str, Any], setup: TrialSetup, rows: dict[str, np.ndarray],
                epochs: int) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    """The Ray task of the best trial's refit (textcnn.training.refit) on rows (train + validation);
    returns its weights and history."""
    config, start = _setup(trial, setup, rows)
    history = refit(start, config, _train_batches(rows, config), setup.recipe.labels, epochs)
    return start.model.state_dict(), history


@dataclass
class TuneResult:
    output: str
    model_version: str
    best: dict[str, Any]              # the best trial's hyperparameters
    metrics: dict[str, Any]           # its best epoch's validation report
    trials: list[dict[str, Any]]      # every trial: hyperparameters, epochs run, best val_metric
    seconds: float
    refit: dict[str, Any] | None = None   # epochs, rows, train_loss of the refit on every row


def _trial_rows(results: Any) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        history = r.metrics_dataframe
        best = float(history["val_metric"].max()) if history is not None and len(history) else float("nan")
        rows.append({**{k: r.config[k] for k in SPACE}, "epochs": 0 if history is None else len(history),
                     "best_val_metric": best, "error": str(r.error) if r.error else None})
    return rows


def _export(p: shared.Prepared, best: Any, setup: TrialSetup, train: dict[str, np.ndarray],
            val: dict[str, np.ndarray] | None) -> tuple[str, dict[str, Any], dict[str, Any] | None]:
    """Export the best trial's best epoch; or, when val is given (refit), its configuration trained
    afresh on train + val for as many epochs, in one Ray task of a trial's size."""
    config, model_config = trial_configs(best.config, p.config, p.model_config)
    checkpoint, _ = max(best.best_checkpoints, key=lambda cm: cm[1]["val_metric"])
    state, done = shared.load_checkpoint(checkpoint), None
    if val is not None:
        rows = {k: np.concatenate([train[k], val[k]]) for k in train}
        epochs = epochs_to_refit(config, state["epoch"] + 1)
        task = ray.remote(refit_trial).options(num_cpus=setup.cpus_per_trial)
        weights, history = ray.get(task.remote(best.config, setup, rows, epochs))
        state, done = {**state, "model": weights}, summary(history, len(rows["ids"]))
        log.info("refit the best trial on all %d rows for %d epoch(s)", done["rows"], epochs)
    return *shared.export_state(state, state["history"], p, config, model_config, done), done


def run_search(config: TrainConfig, samples: int, cpus_per_trial: float = 1.0, grace_epochs: int = 1,
               space: dict[str, Any] | None = None) -> TuneResult:
    """Try `samples` hyperparameter draws (ASHA stops the weak ones early); export the best model,
    refit on every row when config.refits."""
    started = time.perf_counter()
    p = shared.prepare(config)
    setup = TrialSetup(p.recipe(), p.vectors, cpus_per_trial)
    train, val = _arrays(p.train), _arrays(p.val)
    fn = tune.with_resources(tune.with_parameters(trainable, setup=setup, train=train, val=val),
                             {"cpu": cpus_per_trial})
    scheduler = ASHAScheduler(max_t=p.config.epochs, grace_period=grace_epochs, reduction_factor=2)
    name, root = config.run_name or f"tune-{int(time.time())}", shared.storage_root(config, "tune")
    fs, path = storage.resolve(root)
    keep_best = tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute="val_metric",
                                      checkpoint_score_order="max")
    tuner = tune.Tuner(
        fn, param_space=space or search_space(None if p.vectors is None else p.model_config.embed_dim),
        # drawn from config.seed: the same --seed draws the same configurations
        tune_config=tune.TuneConfig(metric="val_metric", mode="max", num_samples=samples, scheduler=scheduler,
                                    search_alg=BasicVariantGenerator(random_state=config.seed),
                                    trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(name=name, storage_path=path,
                                  storage_filesystem=fs, checkpoint_config=keep_best))
    results = tuner.fit()
    best = results.get_best_result(metric="val_metric", mode="max", scope="all")
    version, metrics, done = _export(p, best, setup, train, val if p.config.refits else None)
    trials = _trial_rows(results)
    shared.forget_run(storage.join(root, name))
    return TuneResult(config.output, version, {k: best.config[k] for k in SPACE}, metrics,
                      trials, time.perf_counter() - started, done)
