"""The Ray-free training core: the objective of each head, one epoch, evaluation, the learning-rate
schedule, early stopping and the epoch loop. Ray Train's workers and Ray Tune's trials both run
``run_epochs``; only where batches come from and where reports go differ.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from textcnn.config import TrainConfig
from textcnn.core.predict import autocast, head_probabilities
from textcnn.core.text import PAD_ID, UNK_ID, trim
from textcnn.training.metrics import report_for

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]   # {"ids": (B, L) int64, "label": (B,) int64 or (B, C) float32}


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, out of its DDP wrapper when it has one."""
    return model.module if hasattr(model, "module") else model


class Objective:
    """Loss and probabilities of a head: softmax + cross-entropy (binary and multi-class) or
    sigmoid + binary cross-entropy per class (multi-label, labels as multi-hot rows)."""

    def __init__(self, multi_label: bool, class_weights: list[float] | None = None) -> None:
        self.multi_label = multi_label
        self.weights = torch.tensor(class_weights, dtype=torch.float32) if class_weights else None

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        logits = logits.float()    # under bf16 autocast the loss is still taken in fp32
        w = None if self.weights is None else self.weights.to(logits.device)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=w, reduction=reduction)
        return F.cross_entropy(logits, labels, weight=w, reduction=reduction)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return head_probabilities(logits, self.multi_label)


def warmup_decay(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up from ~0 to 1, then linear decay to 0 at total_steps."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))
    return factor


def optimizer_and_schedule(model: torch.nn.Module, config: TrainConfig, steps_per_epoch: int
                           ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW, stepped with warm-up then decay over every epoch. The n-gram branch takes its own
    rate; with frozen pre-trained vectors the embedding takes no weight decay, which would otherwise
    shrink the frozen rows."""
    net = unwrap(model)
    ngrams, embedding = [net.ngrams.weight], [net.embedding.weight]
    special = ngrams + (embedding if config.freeze_embeddings else [])
    groups = [{"params": [p for p in model.parameters() if all(p is not s for s in special)]},
              {"params": ngrams, "lr": config.ngram_lr}]
    if config.freeze_embeddings:
        groups.append({"params": embedding, "weight_decay": 0.0})
    # fused: one kernel over all parameters; on a CPU it cut the step of the default model's 6.6M
    # weights (most of them the n-gram table) from 69 to 7 ms, a third of a training step
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)
    total = max(1, steps_per_epoch * config.epochs)
    warmup = max(1, int(config.warmup_fraction * total))
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_decay(warmup, total))


def drop_tokens(ids: torch.Tensor, share: float) -> torch.Tensor:
    """ids with each real token replaced by <unk> with probability share (word dropout): the model
    cannot lean on any one word, and it learns what an unseen word looks like."""
    if share <= 0:
        return ids
    hit = (torch.rand(ids.shape, device=ids.device) < share) & (ids != PAD_ID)   # (B, L)
    return ids.masked_fill(hit, UNK_ID)


def train_epoch(model: torch.nn.Module, batches: Iterable[Batch], optimizer: torch.optim.Optimizer,
                objective: Objective, scheduler: Any = None, clip_norm: float = 0.0,
                precision: str = "fp32", token_dropout: float = 0.0) -> float:
    """One pass over batches; returns the mean training loss."""
    model.train()
    min_len, total, n = unwrap(model).min_length, 0.0, 0
    for batch in batches:
        ids = drop_tokens(trim(batch["ids"], min_len), token_dropout)  # (B, L)
        with autocast(ids.device, precision):
            loss = objective.loss(model(ids), batch["label"])          # logits (B, C)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.item() * len(ids)
        n += len(ids)
    return total / max(n, 1)


@torch.inference_mode()
def evaluate(model: torch.nn.Module, batches: Iterable[Batch], objective: Objective,
             precision: str = "fp32") -> tuple[float, np.ndarray, np.ndarray]:
    """Mean loss, true labels ((N,) or multi-hot (N, C)) and probabilities (N, C) over batches."""
    model.eval()
    net, total, trues, probs = unwrap(model), 0.0, [], []
    for batch in batches:
        ids = trim(batch["ids"], net.min_length)
        with autocast(ids.device, precision):
            logits = net(ids)                                          # (B, C)
        total += objective.loss(logits, batch["label"], reduction="sum").item()
        trues.append(batch["label"].cpu().numpy())
        probs.append(objective.probabilities(logits).cpu().numpy())
    if not trues:
        return 0.0, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
    y_true = np.concatenate(trues)
    return total / max(len(y_true), 1), y_true, np.concatenate(probs)


@dataclass
class EarlyStopping:
    """Stops after `patience` epochs without a better validation metric (0: never stops)."""
    patience: int
    best: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, epoch: int, value: float) -> None:
        if value > self.best:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.bad_epochs >= self.patience

    @classmethod
    def replay(cls, patience: int, history: list[dict[str, Any]]) -> EarlyStopping:
        """The state after the epochs of history (a resumed run stops where the first would have)."""
        stopping = cls(patience)
        for h in history:
            stopping.update(h["epoch"], h["val_metric"])
        return stopping


@dataclass
class Loop:
    """What run_epochs needs besides the model: batches per epoch, validation batches, and where
    each epoch's metrics (and, on the reporting rank, its checkpoint state) go."""
    train_batches: Callable[[int], Iterable[Batch]]     # epoch -> batches
    val_batches: Callable[[], Iterable[Batch]] | None  # None: run_train_epochs, which does not validate
    report: Callable[[dict[str, Any], dict[str, Any] | None], None]
    labels: list[str]
    saves_state: bool = True                            # rank 0 only under DDP
    history: list[dict[str, Any]] = field(default_factory=list)
    first_epoch: int = 0
    end_epoch: int | None = None                        # run_train_epochs stops before it (None: config.epochs)


def _state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, epoch: int,
           history: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "epoch": epoch, "history": history, **extra}


def run_epochs(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
               objective: Objective, config: TrainConfig, loop: Loop) -> list[dict[str, Any]]:
    """Train until config.epochs or early stopping, validating after each epoch; report each epoch;
    return the history."""
    stopping = EarlyStopping.replay(config.patience, loop.history)
    for epoch in range(loop.first_epoch, config.epochs):
        if stopping.stop:
            break
        started = time.perf_counter()
        train_loss = train_epoch(model, loop.train_batches(epoch), optimizer, objective, scheduler,
                                 config.clip_norm, config.precision, config.token_dropout)
        val_loss, y_true, probs = evaluate(model, loop.val_batches(), objective, config.precision)
        report = report_for(y_true, probs, loop.labels, objective.multi_label)
        stopping.update(epoch, report["selection_metric"])
        metrics = {"epoch": epoch, "attempt_start_epoch": loop.first_epoch, "train_loss": train_loss,
                   "val_loss": val_loss, "val_metric": report["selection_metric"],
                   "val_acc": report["accuracy"], "val_macro_f1": report["macro_f1"],
                   "lr": scheduler.get_last_lr()[0], "epoch_seconds": time.perf_counter() - started,
                   "stopped_early": stopping.stop and epoch + 1 < config.epochs}
        loop.history.append(metrics)
        loop.report(metrics, _state(model, optimizer, scheduler, epoch, loop.history, report=report)
                    if loop.saves_state else None)
    return loop.history


def run_train_epochs(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     objective: Objective, config: TrainConfig, loop: Loop) -> list[dict[str, Any]]:
    """Train up to loop.end_epoch without validating (a refit: the validation rows are training
    rows, and the epoch count was chosen already); report each epoch; return the history."""
    for epoch in range(loop.first_epoch, loop.end_epoch or config.epochs):
        started = time.perf_counter()
        train_loss = train_epoch(model, loop.train_batches(epoch), optimizer, objective, scheduler,
                                 config.clip_norm, config.precision, config.token_dropout)
        metrics = {"epoch": epoch, "attempt_start_epoch": loop.first_epoch, "train_loss": train_loss,
                   "lr": scheduler.get_last_lr()[0], "epoch_seconds": time.perf_counter() - started}
        loop.history.append(metrics)
        loop.report(metrics, _state(model, optimizer, scheduler, epoch, loop.history) if loop.saves_state else None)
    return loop.history
