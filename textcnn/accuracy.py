"""The accuracy benchmark: train with the defaults on each shared labelled set, evaluate on its test
split, and set the result beside the peers and the target of the set's REFERENCE.md."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass

from textcnn.config import TrainConfig
from textcnn.evaluation import evaluate_parquet
from textcnn.train import fit

log = logging.getLogger(__name__)


@dataclass
class Reference:
    fasttext: float
    tfidf: float
    target: float


@dataclass
class Row:
    name: str
    accuracy: float
    macro_f1: float
    reference: Reference
    train_seconds: float
    epochs: int                  # of the selection run (early stopping)
    refit_epochs: int | None     # of the refit on every row (None: no refit)

    @property
    def met(self) -> bool:
        return self.accuracy >= self.reference.target


def references(datasets: str) -> dict[str, Reference]:
    """The table of REFERENCE.md: | set | fastText | TF-IDF + LR | target (">= x") |."""
    with open(os.path.join(datasets, "REFERENCE.md"), encoding="utf-8") as f:
        rows = [line for line in f if line.startswith("|")]
    out = {}
    for line in rows:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        numbers = [re.search(r"\d+(\.\d+)?", c) for c in cells[1:4]]
        if len(cells) >= 4 and all(numbers):
            out[cells[0]] = Reference(*(float(m.group()) for m in numbers))
    return out


def run_set(datasets: str, name: str, reference: Reference, workdir: str, workers: int) -> Row:
    folder = os.path.join(datasets, name)
    model = os.path.join(workdir, name)
    result = fit(TrainConfig(train=os.path.join(folder, "train.parquet"), output=model, workers=workers,
                             run_name=f"bench-{name}", storage_path=os.path.join(workdir, "_checkpoints", name)))
    report = evaluate_parquet(model, os.path.join(folder, "test.parquet"))
    log.info("%s: test accuracy %.4f, macro-F1 %.4f (target %.3f)", name, report["accuracy"],
             report["macro_f1"], reference.target)
    return Row(name, report["accuracy"], report["macro_f1"], reference, result.seconds, len(result.history),
               result.refit["epochs"] if result.refit else None)


def table(rows: list[Row]) -> str:
    lines = ["| set | accuracy | macro-F1 | target | met | fastText | TF-IDF + LR | train time | epochs (refit) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        refit = "-" if r.refit_epochs is None else str(r.refit_epochs)
        lines.append(f"| {r.name} | {r.accuracy:.3f} | {r.macro_f1:.3f} | >= {r.reference.target:.3f} | "
                     f"{'yes' if r.met else 'NO'} | {r.reference.fasttext:.3f} | {r.reference.tfidf:.3f} | "
                     f"{r.train_seconds:.0f} s | {r.epochs} ({refit}) |")
    return "\n".join(lines)
