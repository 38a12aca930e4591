"""Learning curves (issue 35): the text CNN's defaults against its linear peers as the training set
shrinks. For each shared set, size and seed, a stratified subsample of the set's training split (the
test split unchanged) is trained with the defaults, exactly as benchmarks/accuracy.py trains the full
set, and, on the same rows in the same run, TF-IDF + logistic regression and fastText configured as
REFERENCE.md's peers. The table gives each size's mean and standard error over the seeds and whether
the CNN's mean is at least TF-IDF + LR's (a tie within one standard error of the paired differences
counts as not yet); the figures also go to JSON and a PNG.

The subsample of seed s is a prefix of one seeded, stratified order of the training rows, so a seed's
500 rows are among its 1,000 and each class keeps its share (within a row or two) at every size."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textcnn.core.text import cjk_share
from textcnn.training.presets import CJK_MAJORITY

log = logging.getLogger(__name__)

FULL = "full"
# REFERENCE.md: "fastText 0.9.x supervised, word bigrams, dim 100, best of three (lr, epoch) settings,
# lowercased". The three are not named there; these span fastText's default (0.1, 5) to the long,
# fast schedules small sets want. Like the reference, the best of the three on the test split counts,
# which flatters fastText: it is the weaker peer, and the yardstick of the issue is TF-IDF + LR.
FASTTEXT_SETTINGS = ((0.1, 5), (0.5, 10), (0.5, 25))
TFIDF_C = 10.0


def parse_sizes(text: str) -> list[int | str]:
    """"500,1000,full" -> [500, 1000, "full"]: training rows per subsample, "full" for the whole split."""
    sizes: list[int | str] = []
    for item in (s.strip().lower() for s in text.split(",")):
        if item == FULL:
            size: int | str = FULL
        elif item.isdigit() and int(item) > 0:
            size = int(item)
        else:
            raise ValueError(f"a size is a row count > 0 or '{FULL}', got {item!r}")
        if size in sizes:
            raise ValueError(f"size {item!r} given twice")
        sizes.append(size)
    if not sizes:
        raise ValueError("no sizes given")
    return sizes


def stratified_order(labels: Sequence[str], seed: int) -> np.ndarray:
    """The row indices in a seeded order whose every prefix is a stratified sample: within each class
    the rows are shuffled, and the i-th row of a class of n rows sorts at (i + 0.5) / n, ties broken at
    random. A prefix of k rows then holds each class's share of k, give or take a row or two (1.3 at
    most with ten classes in a trial of 1,000 subsamples)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=object)
    key = np.empty(len(labels))
    for name in sorted(set(labels.tolist())):
        rows = np.flatnonzero(labels == name)
        key[rng.permutation(rows)] = (np.arange(len(rows)) + 0.5) / len(rows)
    return np.lexsort((rng.random(len(labels)), key))


def subsample(labels: Sequence[str], size: int | str, seed: int) -> np.ndarray:
    """Indices of a stratified subsample of size rows (seeded; "full": every row, in order)."""
    if size == FULL:
        return np.arange(len(labels))
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a row count >= 1 or '{FULL}', got {size!r}")
    if size > len(labels):
        raise ValueError(f"size {size} is more than the {len(labels)} training rows")
    return np.sort(stratified_order(labels, seed)[:size])


def sizes_for(sizes: Sequence[int | str], rows: int) -> tuple[list[int | str], list[int]]:
    """The sizes a set of rows training rows can give (a count of rows or more is the full split, which
    "full" measures), and the ones left out."""
    kept = [s for s in sizes if s == FULL or s < rows]
    return kept, [s for s in sizes if s != FULL and s >= rows]


# --- the peers ---------------------------------------------------------------------------------------


def is_chinese(texts: Sequence[str]) -> bool:
    """The CNN's own rule (textcnn presets): a corpus whose word tokens are mostly CJK characters."""
    return cjk_share(texts[:1000]) > CJK_MAJORITY


def tfidf_lr(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
             test_labels: Sequence[str], chinese: bool) -> float:
    """REFERENCE.md's TF-IDF + LR: word 1-2 grams (character 1-2 grams for Chinese), C=10; accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    vectorizer = TfidfVectorizer(analyzer="char" if chinese else "word", ngram_range=(1, 2))
    model = LogisticRegression(C=TFIDF_C, max_iter=2000)
    model.fit(vectorizer.fit_transform(train_texts), list(train_labels))
    return float(np.mean(model.predict(vectorizer.transform(test_texts)) == np.asarray(test_labels, dtype=object)))


def fasttext_available() -> bool:
    try:
        import fasttext  # noqa: F401
    except ImportError:
        return False
    return True


def _fasttext_line(text: str, chinese: bool) -> str:
    text = re.sub(r"\s+", " ", text.lower()).strip()      # one example per line, lowercased
    return " ".join(c for c in text if c != " ") if chinese else text


def fasttext_best(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
                  test_labels: Sequence[str], chinese: bool, seed: int) -> float:
    """REFERENCE.md's fastText: word bigrams, dim 100, lowercased, Chinese split into characters; the
    best test accuracy of FASTTEXT_SETTINGS."""
    import fasttext
    lines = [_fasttext_line(t, chinese) for t in test_texts]
    best = 0.0
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
        for text, label in zip(train_texts, train_labels):
            f.write(f"__label__{label.replace(' ', '_')} {_fasttext_line(text, chinese)}\n")
        f.flush()
        for lr, epoch in FASTTEXT_SETTINGS:
            model = fasttext.train_supervised(f.name, lr=lr, epoch=epoch, wordNgrams=2, dim=100, seed=seed,
                                              thread=2, verbose=0)
            predicted = [p[0].removeprefix("__label__") for p in model.predict(lines)[0]]
            best = max(best, float(np.mean([p == t.replace(" ", "_") for p, t in zip(predicted, test_labels)])))
    return best


# --- one point of a curve, and their summary ---------------------------------------------------------


@dataclass
class Point:
    """One set, size and seed: the three accuracies on the test split (fasttext None: not measured)."""
    name: str
    size: int | str
    rows: int                    # training rows of the subsample
    seed: int
    cnn: float
    tfidf: float
    fasttext: float | None
    cnn_seconds: float = 0.0
    epochs: int = 0              # of the selection run
    refit_epochs: int | None = None


@dataclass
class Spread:
    mean: float
    se: float                    # standard error of the mean over seeds (0 with one seed)
    values: list[float] = field(default_factory=list)


def spread(values: Sequence[float]) -> Spread:
    values = list(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return Spread(statistics.fmean(values), se, values)


@dataclass
class CurveRow:
    name: str
    size: int | str
    rows: int
    cnn: Spread
    tfidf: Spread
    fasttext: Spread | None
    gap: Spread                  # CNN - TF-IDF + LR, paired by seed (the same rows)
    cnn_seconds: float

    @property
    def verdict(self) -> str:
        """"yes": the CNN's mean is above TF-IDF + LR's by more than one standard error of the paired
        differences; "tie" within it (not yet); "no" below by more."""
        if self.gap.mean > self.gap.se:
            return "yes"
        return "tie" if self.gap.mean >= -self.gap.se else "no"


def summarise(points: Sequence[Point]) -> list[CurveRow]:
    """One row per set and size, in the order first seen, over that point's seeds."""
    groups: dict[tuple[str, int | str], list[Point]] = {}
    for p in points:
        groups.setdefault((p.name, p.size), []).append(p)
    rows = []
    for (name, size), ps in groups.items():
        ft = [p.fasttext for p in ps if p.fasttext is not None]
        rows.append(CurveRow(name, size, round(statistics.fmean(p.rows for p in ps)), spread(p.cnn for p in ps),
                             spread(p.tfidf for p in ps), spread(ft) if ft else None,
                             spread(p.cnn - p.tfidf for p in ps), statistics.fmean(p.cnn_seconds for p in ps)))
    return rows


def _pm(s: Spread | None) -> str:
    return "-" if s is None else f"{s.mean:.3f} ± {s.se:.3f}"


def curve_table(rows: Sequence[CurveRow]) -> str:
    """A Markdown table: per set and size, mean ± standard error over seeds of each model, the CNN's
    gap to TF-IDF + LR in points, and the verdict."""
    lines = ["| set | size | rows | seeds | CNN | TF-IDF + LR | fastText | CNN - LR (points) | CNN >= LR | CNN train |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.size} | {r.rows} | {len(r.cnn.values)} | {_pm(r.cnn)} | {_pm(r.tfidf)} | "
                     f"{_pm(r.fasttext)} | {100 * r.gap.mean:+.1f} ± {100 * r.gap.se:.1f} | {r.verdict} | "
                     f"{r.cnn_seconds:.0f} s |")
    return "\n".join(lines)


def write_json(points: Sequence[Point], rows: Sequence[CurveRow], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"points": [asdict(p) for p in points],
                   "curves": [{**asdict(r), "verdict": r.verdict} for r in rows],
                   "fasttext_settings": FASTTEXT_SETTINGS, "tfidf_c": TFIDF_C}, f, indent=1)


def plot(rows: Sequence[CurveRow], path: str) -> bool:
    """The curves as a PNG, one panel per set (x: training rows, log scale); False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed (the `plots` extra): no PNG of the curves")
        return False
    names = list(dict.fromkeys(r.name for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        mine = sorted((r for r in rows if r.name == name), key=lambda r: r.rows)
        x = [r.rows for r in mine]
        for label, get in (("text CNN", lambda r: r.cnn), ("TF-IDF + LR", lambda r: r.tfidf),
                           ("fastText", lambda r: r.fasttext)):
            pts = [(xi, get(r)) for xi, r in zip(x, mine) if get(r) is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts], yerr=[p[1].se for p in pts],
                            marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xticks(x, [f"{xi:,}" for xi in x])
        ax.minorticks_off()
        ax.set_title(name)
        ax.set_xlabel("training rows")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (mean ± s.e.)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# --- the run -----------------------------------------------------------------------------------------


def run_point(datasets: str, name: str, size: int | str, seed: int, workdir: str, workers: int,
              train: Split, test: Split, with_fasttext: bool) -> Point:
    """Train the CNN, TF-IDF + LR and fastText on one subsample of name's training split (read once
    per set: train and test); the CNN reads a Parquet copy of the subsample."""
    from benchmarks.accuracy import train_and_evaluate  # torch and Ray Train take seconds to import
    folder = os.path.join(datasets, name)
    tag = f"{name}-{size}-seed{seed}"
    index = subsample(train.labels, size, seed)
    if size == FULL:
        train_path = os.path.join(folder, "train.parquet")
    else:
        train_path = os.path.join(workdir, "_subsamples", f"{tag}.parquet")
        os.makedirs(os.path.dirname(train_path), exist_ok=True)
        pq.write_table(train.table.take(index), train_path)
    texts, labels = [train.texts[i] for i in index], [train.labels[i] for i in index]
    chinese = is_chinese(texts)
    lr = tfidf_lr(texts, labels, test.texts, test.labels, chinese)
    ft = fasttext_best(texts, labels, test.texts, test.labels, chinese, seed) if with_fasttext else None
    log.info("%s: TF-IDF + LR %.4f, fastText %s", tag, lr, "-" if ft is None else f"{ft:.4f}")
    cnn = train_and_evaluate(train_path, os.path.join(folder, "test.parquet"), os.path.join(workdir, tag),
                             workers, seed, os.path.join(workdir, "_checkpoints", name))
    log.info("%s: text CNN %.4f (%.0f s), TF-IDF + LR %.4f", tag, cnn.accuracy, cnn.train_seconds, lr)
    return Point(name, size, len(index), seed, cnn.accuracy, lr, ft, cnn.train_seconds, cnn.epochs, cnn.refit_epochs)


@dataclass
class Split:
    """A set's split as read once: the table (subsamples are taken from it) and its two columns."""
    table: pa.Table
    texts: list[str]
    labels: list[str]


def read_split(path: str) -> Split:
    table = pq.read_table(path)
    return Split(table, table.column("text").to_pylist(), table.column("label").to_pylist())


def run(datasets: str, names: Sequence[str], sizes: Sequence[int | str], seeds: int, workdir: str,
        workers: int) -> list[Point]:
    """Every set, size and seed in that order; after each point the figures so far are written to
    workdir (curves.json, curves.md), so a run cut short keeps what it measured, and the PNG after each set."""
    with_fasttext = fasttext_available()
    if not with_fasttext:
        log.warning("fastText is not installed (the `bench` extra: pip install fasttext-wheel): not measured")
    points: list[Point] = []
    for name in names:
        train = read_split(os.path.join(datasets, name, "train.parquet"))
        test = read_split(os.path.join(datasets, name, "test.parquet"))
        kept, dropped = sizes_for(sizes, len(train.labels))
        if dropped:
            log.warning("%s: sizes %s skipped: not fewer than its %d training rows (the 'full' size measures those)",
                        name, ", ".join(map(str, dropped)), len(train.labels))
        for size in kept:
            for seed in range(seeds):
                points.append(run_point(datasets, name, size, seed, workdir, workers, train, test, with_fasttext))
                rows = summarise(points)
                write_json(points, rows, os.path.join(workdir, "curves.json"))
                with open(os.path.join(workdir, "curves.md"), "w", encoding="utf-8") as f:
                    f.write(curve_table(rows) + "\n")
        plot(summarise(points), os.path.join(workdir, "curves.png"))
    return points
