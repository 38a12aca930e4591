"""The accuracy benchmark: train with the defaults on each shared labelled set, evaluate on its test
split, and set the result beside the peers and the target of the set's REFERENCE.md. With several
seeds, each set is trained once per seed (the seed moves the initial weights, the validation split,
the shuffle and so the picked epoch count) and the table gives the mean, beside each seed's result."""

from __future__ import annotations

import logging
import os
import re
import statistics
from dataclasses import dataclass, field

from textcnn.config import TrainConfig

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
    runs: list[Row] = field(default_factory=list)   # one per seed when this row is their mean

    @property
    def met(self) -> bool:
        return self.accuracy >= self.reference.target


def missing(datasets: str, names: tuple[str, ...] = ()) -> str | None:
    """The first file the benchmark needs that datasets lacks (REFERENCE.md, then each set's train and
    test splits; every set of REFERENCE.md's table unless names), relative to datasets; None if none."""
    if not os.path.isfile(os.path.join(datasets, "REFERENCE.md")):
        return "REFERENCE.md"
    for name in names or references(datasets):
        for split in ("train", "test"):
            path = os.path.join(name, f"{split}.parquet")
            if not os.path.isfile(os.path.join(datasets, path)):
                return path
    return None


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


@dataclass
class Trained:
    """One training with the defaults, scored on a test split."""
    accuracy: float
    macro_f1: float
    train_seconds: float
    epochs: int                  # of the selection run (early stopping)
    refit_epochs: int | None     # of the refit on every row (None: no refit)


def train_and_evaluate(train: str, test: str, model: str, workers: int, seed: int, storage_path: str) -> Trained:
    """`textcnn train --train TRAIN` with the defaults (workers, seed aside) into model, evaluated on test."""
    # imported here: torch and Ray Train take seconds to import, which `--help` and the table need not wait for
    from textcnn.training.evaluate import evaluate_parquet
    from textcnn.training.train import fit
    result = fit(TrainConfig(train=train, output=model, workers=workers, seed=seed,
                             run_name=f"bench-{os.path.basename(model)}", storage_path=storage_path))
    report = evaluate_parquet(model, test)
    return Trained(report["accuracy"], report["macro_f1"], result.seconds, len(result.history),
                   result.refit["epochs"] if result.refit else None)


def run_set(datasets: str, name: str, reference: Reference, workdir: str, workers: int, seed: int = 0) -> Row:
    folder = os.path.join(datasets, name)
    model = os.path.join(workdir, name if seed == 0 else f"{name}-seed{seed}")
    t = train_and_evaluate(os.path.join(folder, "train.parquet"), os.path.join(folder, "test.parquet"), model,
                           workers, seed, os.path.join(workdir, "_checkpoints", name))
    log.info("%s (seed %d): test accuracy %.4f, macro-F1 %.4f (target %.3f)", name, seed, t.accuracy,
             t.macro_f1, reference.target)
    return Row(name, t.accuracy, t.macro_f1, reference, t.train_seconds, t.epochs, t.refit_epochs)


def mean_row(runs: list[Row]) -> Row:
    """One row for a set trained once per seed: mean accuracy, macro-F1 and train time, each run in
    .runs for the table's per-seed column (one run: that run's row)."""
    if len(runs) == 1:
        return runs[0]
    first = runs[0]
    return Row(first.name, statistics.fmean(r.accuracy for r in runs), statistics.fmean(r.macro_f1 for r in runs),
               first.reference, statistics.fmean(r.train_seconds for r in runs), first.epochs, first.refit_epochs,
               runs)


def _epochs(r: Row) -> str:
    return f"{r.epochs} ({'-' if r.refit_epochs is None else r.refit_epochs})"


def table(rows: list[Row]) -> str:
    """A Markdown table; with several seeds per set, accuracy, macro-F1 and train time are means, and
    a last column gives each seed's accuracy and epochs."""
    seeds = any(r.runs for r in rows)
    head = "| set | accuracy | macro-F1 | target | met | fastText | TF-IDF + LR | train time | epochs (refit) |"
    lines = [head + (" per seed: accuracy, epochs (refit) |" if seeds else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if seeds else "")]
    for r in rows:
        digits = 4 if r.runs else 3    # a mean near the target must not round onto it
        line = (f"| {r.name} | {r.accuracy:.{digits}f} | {r.macro_f1:.{digits}f} | >= {r.reference.target:.3f} | "
                f"{'yes' if r.met else 'NO'} | {r.reference.fasttext:.3f} | {r.reference.tfidf:.3f} | "
                f"{r.train_seconds:.0f} s | {'-' if r.runs else _epochs(r)} |")
        if seeds:
            line += " " + "; ".join(f"{x.accuracy:.3f}, {_epochs(x)}" for x in r.runs or [r]) + " |"
        lines.append(line)
    return "\n".join(lines)
