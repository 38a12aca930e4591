"""The refit: a fresh model of the selected recipe trained on every row (train + validation) for the
epoch count the selection picked, without validating (the validation rows are training rows now).

Why: the held-out 10% had cost about a point of test accuracy on the shared sets. `textcnn train`
runs the refit as train_func's second phase on its Ray Train workers, `textcnn tune` runs it for the
best trial in one Ray task; only where batches come from and where each epoch's report goes differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textcnn.config import TrainConfig
from textcnn.training.loop import Batch, Loop, run_train_epochs
from textcnn.training.prepare import Start

Report = Callable[[dict[str, Any], dict[str, Any] | None], None]


def no_report(metrics: dict[str, Any], state: dict[str, Any] | None) -> None:
    """A refit in a plain Ray task keeps no checkpoints: its result is the weights it returns."""


def refit(start: Start, config: TrainConfig, batches: Callable[[int], Iterable[Batch]], labels: list[str],
          epochs: int, report: Report = no_report, saves_state: bool = False) -> list[dict[str, Any]]:
    """Train start's model on batches (epoch -> every row) up to epoch `epochs`, from start's first
    epoch on, reporting each epoch; returns the history (start's, extended)."""
    loop = Loop(batches, None, report, labels, saves_state=saves_state, history=start.history,
                first_epoch=start.first_epoch, end_epoch=epochs)
    return run_train_epochs(start.model, start.optimizer, start.scheduler, start.objective, config, loop)


def epochs_to_refit(config: TrainConfig, picked: int) -> int:
    """The refit's epoch count: the picked one, or every epoch of the schedule when the validation
    split was too small to pick (config.refit_schedule "full", textcnn.training.presets)."""
    return config.epochs if config.refit_schedule == "full" else picked


def summary(history: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    """What the model directory's metrics.json says of a refit: epochs, rows, and its training losses."""
    return {"epochs": len(history), "rows": rows, "train_loss": [h["train_loss"] for h in history]}
