"""Typed configuration: every default of textcnn lives here, and every value is checked here.

A resolved config is saved as JSON with each model directory and each scoring run, so that what ran
can always be read back (``from_dict``) and compared.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from dataclasses import dataclass, field
from typing import Any

from textcnn.errors import TextcnnError


class ConfigError(TextcnnError, ValueError):
    """A configuration value is out of range; the message names the field."""


def _check(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {why}")


PLACEMENTS = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
PRECISIONS = ("auto", "fp32", "bf16")        # auto: bf16 autocast on GPU, fp32 on CPU
SCORE_PRECISIONS = PRECISIONS + ("int8",)    # int8: dynamic quantization, CPU only (quantize.py)
PREDICT_FORMATS = ("txt", "csv", "jsonl", "parquet")   # what `textcnn predict` reads (predict.py)
PREDICT_BATCH_ROWS = 4096                    # texts `textcnn predict` reads, checks and scores at a time
CLASS_WEIGHTS = ("none", "balanced")
REFIT_SCHEDULES = ("auto", "picked", "full")   # how many epochs the refit trains (textcnn.training.presets)
NGRAM_INITS = ("auto", "logistic", "naive_bayes", "zeros")   # how the n-gram branch starts (training.ngram_start)
SPLITS = ("auto", "words", "chars")         # how text becomes tokens (textcnn.core.text.split)


@dataclass(frozen=True)
class TokenizerConfig:
    lowercase: bool = True
    split: str = "auto"           # words | chars (every character; CJK corpora); auto: from the corpus
    max_length: int = 0           # tokens kept per text (longer texts are truncated); 0: from the corpus
    min_count: int = 1            # a token seen fewer times in training maps to <unk>
    max_vocab: int = 50_000       # including <pad> and <unk>

    def __post_init__(self) -> None:
        _check(self.split in SPLITS, "split", f"must be one of {SPLITS}, got {self.split!r}")
        _check(self.max_length >= 0, "max_length", f"must be >= 1 (0: from the corpus), got {self.max_length}")
        _check(self.min_count >= 1, "min_count", f"must be >= 1, got {self.min_count}")
        _check(self.max_vocab >= 3, "max_vocab", f"must be >= 3, got {self.max_vocab}")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 0           # set from the vocabulary when training starts
    num_classes: int = 2
    embed_dim: int = 128
    kernel_sizes: tuple[int, ...] = ()  # n-gram widths; empty: from the corpus (textcnn.training.presets)
    num_filters: int = 100
    dropout: float = 0.5
    multi_label: bool = False     # sigmoid per class instead of softmax; set from the label column
    ngram_buckets: int = -1       # hashed unigram+bigram linear branch (0: off; -1: auto_ngram_buckets)
    ngram_idf: bool | None = None  # weigh the branch's n-grams by IDF (None: from the corpus, presets.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        _check(self.vocab_size >= 0, "vocab_size", f"must be >= 0, got {self.vocab_size}")
        _check(self.num_classes >= 2, "num_classes", f"must be >= 2, got {self.num_classes}")
        _check(self.embed_dim >= 1, "embed_dim", f"must be >= 1, got {self.embed_dim}")
        _check(not self.kernel_sizes or min(self.kernel_sizes) >= 1,
               "kernel_sizes", f"must be widths >= 1 (none: from the corpus), got {self.kernel_sizes}")
        _check(self.num_filters >= 1, "num_filters", f"must be >= 1, got {self.num_filters}")
        _check(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        _check(self.ngram_buckets >= -1, "ngram_buckets",
               f"must be >= 0 (0: off; -1: from the class count), got {self.ngram_buckets}")

    @property
    def buckets(self) -> int:
        """ngram_buckets, resolved."""
        return auto_ngram_buckets(self.num_classes) if self.ngram_buckets < 0 else self.ngram_buckets


MAX_NGRAM_WEIGHTS = 2**22


def auto_ngram_buckets(num_classes: int) -> int:
    """2**21 buckets for 2 classes, fewer for more: at most 2**22 weights (16 MB). Fewer buckets
    collide more (at 2**18 they cost rt_snippets about a point), but every training step updates
    the whole table with AdamW, which on a CPU costs time per step whatever the batch size."""
    buckets = 2**21
    while buckets * num_classes > MAX_NGRAM_WEIGHTS:
        buckets //= 2
    return buckets


@dataclass(frozen=True)
class TrainConfig:
    train: str                    # Parquet file or folder (local path or URI)
    output: str                   # the exported model directory
    val: str | None = None        # when absent, val_fraction of train is held out
    text_column: str = "text"
    label_column: str = "label"
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: float = 0.5  # fractional: whole CPUs starve Ray Data on small machines
    epochs: int = 0               # at most (early stopping may end sooner); 0: from the row count (presets.py)
    batch_size: int = 64
    lr: float = 3e-3              # peak AdamW rate, reached after warm-up, then decayed linearly to 0
    ngram_lr: float = 3e-2        # peak rate of the n-gram branch: a linear model wants larger steps
    ngram_init: str = "auto"      # the branch's start: logistic regression, naive Bayes counts or zeros;
                                  # auto: logistic on small IDF-weighted splits, naive Bayes otherwise (presets.py)
    weight_decay: float = 0.0
    warmup_fraction: float = 0.1  # of all steps
    patience: int = 3             # epochs without a better validation metric before stopping (0: never)
    clip_norm: float = 1.0        # gradient norm clipping (0: off)
    token_dropout: float = 0.1    # share of a training row's tokens replaced by <unk> at each step
    refit: bool = True            # with val carved from train: retrain on all rows for the picked epochs
    refit_schedule: str = "auto"  # picked: the refit trains the epochs validation picked; full: every epoch
                                  # of the schedule; auto: full when the validation split is small (presets.py)
    class_weights: str = "none"   # "balanced": loss weights inversely proportional to class frequency
    precision: str = "auto"       # "auto": bf16 autocast on GPU, fp32 on CPU
    embeddings: str | None = None     # word2vec (text/binary) or GloVe file initialising known words' vectors
    freeze_embeddings: bool = False   # the file's vectors stay as read; other words still learn
    val_fraction: float = 0.1
    seed: int = 0
    storage_path: str | None = None   # Ray Train checkpoints; default: see training.prepare.storage_root
    run_name: str | None = None
    max_failures: int = 3             # worker-group restarts from the last checkpoint before giving up
    placement: str = "PACK"           # Ray placement of the workers: PACK, SPREAD or STRICT_SPREAD
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)

    def __post_init__(self) -> None:
        _check(bool(self.train), "train", "a training data path is required")
        _check(bool(self.output), "output", "an output model directory is required")
        _check(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        _check(self.cpus_per_worker > 0, "cpus_per_worker", f"must be > 0, got {self.cpus_per_worker}")
        _check(self.epochs >= 0, "epochs", f"must be >= 1 (0: from the row count), got {self.epochs}")
        _check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        _check(self.ngram_lr > 0, "ngram_lr", f"must be > 0, got {self.ngram_lr}")
        _check(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(0.0 <= self.warmup_fraction < 1.0, "warmup_fraction", f"must be in [0, 1), got {self.warmup_fraction}")
        _check(self.patience >= 0, "patience", f"must be >= 0 (0: no early stopping), got {self.patience}")
        _check(self.clip_norm >= 0, "clip_norm", f"must be >= 0 (0: off), got {self.clip_norm}")
        _check(0.0 <= self.token_dropout < 1.0, "token_dropout", f"must be in [0, 1), got {self.token_dropout}")
        _check(self.class_weights in CLASS_WEIGHTS, "class_weights",
               f"must be one of {CLASS_WEIGHTS}, got {self.class_weights!r}")
        _check(self.refit_schedule in REFIT_SCHEDULES, "refit_schedule",
               f"must be one of {REFIT_SCHEDULES}, got {self.refit_schedule!r}")
        _check(self.ngram_init in NGRAM_INITS, "ngram_init",
               f"must be one of {NGRAM_INITS}, got {self.ngram_init!r}")
        _check(self.precision in PRECISIONS, "precision", f"must be one of {PRECISIONS}, got {self.precision!r}")
        _check(not self.freeze_embeddings or bool(self.embeddings), "freeze_embeddings",
               "needs an embeddings file")
        _check(0.0 < self.val_fraction < 1.0, "val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        _check(self.text_column != self.label_column, "label_column", "must differ from text_column")
        _check(self.max_failures >= -1, "max_failures", f"must be >= -1 (-1: forever), got {self.max_failures}")
        _check(self.placement in PLACEMENTS, "placement", f"must be one of {PLACEMENTS}, got {self.placement!r}")

    @property
    def refits(self) -> bool:
        """Whether the picked epoch count is trained again on every row: refit asked for, and the
        validation rows carved from train (a given validation set is never trained on)."""
        return self.refit and self.val is None


DATE_RE = r"\d{4}-\d{2}-\d{2}"
RUN_ID_RE = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"
TABLE_RE = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+"    # namespace.table (Iceberg, --output-table)
DEAD_LETTER_SUFFIX = "_dead_letters"    # NS.T's dead letters go to table NS.T_dead_letters
CATALOG_RE = r"[A-Za-z][A-Za-z0-9_-]{0,63}"      # a pyiceberg catalog name (PYICEBERG_CATALOG__<NAME>__*)


@dataclass(frozen=True)
class ScoreConfig:
    model: str                    # a model directory written by `textcnn train`
    input: str                    # Parquet file or folder
    output: str                   # root folder; each run goes to <output>/scores/run_date=YYYY-MM-DD/ (runs.py)
    run_date: str = ""            # YYYY-MM-DD; the CLI defaults it to today (UTC)
    run_id: str = ""              # instead of run_date: <output>/scores/run=<run_id>/
    id_column: str = "id"
    text_column: str = "text"
    actors: int = 0               # 0: from the cluster, one per CPU core (one per GPU with use_gpu)
    use_gpu: bool = False
    cpus_per_actor: float = 0.5   # the other half of each core tokenizes and writes
    batch_size: int = 0           # rows per model call; 0: 4096 on CPU, 8192 on GPU (runtime.py)
    unit_rows: int = 50_000       # rows per unit of work: committed, and skipped on resume, as one
    max_text_chars: int = 100_000  # longer texts are dead-lettered, not truncated silently
    max_id_chars: int = 256
    allow_unknown_only: bool = False  # score texts with no in-vocabulary token instead of dead-lettering
    skip_bad_files: bool = False  # list unreadable input files in the manifest instead of failing
    max_drift: float | None = None  # fail before committing when drift vs the previous run is larger
    lock_ttl: float = 300.0       # seconds without a heartbeat after which another host's lock is stale
    explain: int = 0              # add the top-K n-grams behind each score (0: off)
    precision: str = "auto"       # auto: bf16 autocast on GPU, fp32 on CPU; int8: quantized, CPU only
    keep_columns: tuple[str, ...] = ()  # input columns carried through to the score files, after the id
    no_id: bool = False           # the input has no ids: id_column then holds "<file>:<row>" (stages.Columns)
    output_table: str = ""        # namespace.table: commit to Iceberg tables instead of folders (scoring/tables.py)
    input_table: str = ""         # namespace.table: score an Iceberg table's snapshot (input: set to its location)
    since_snapshot: int | None = None   # with input_table: only the rows appended after this snapshot
    catalog: str = "default"      # pyiceberg catalog of output_table/input_table; unconfigured: SQLite under output

    def __post_init__(self) -> None:
        for name in ("model", "output", "id_column", "text_column"):
            _check(bool(getattr(self, name)), name, "is required")
        _check(bool(self.input) or bool(self.input_table), "input", "is required (a Parquet path, or input_table)")
        _check(bool(self.run_date) != bool(self.run_id), "run_date", "give exactly one of run_date and run_id")
        if self.run_date:
            _check(re.fullmatch(DATE_RE, self.run_date) is not None and _is_date(self.run_date),
                   "run_date", f"must be a date YYYY-MM-DD, got {self.run_date!r}")
        if self.run_id:
            _check(re.fullmatch(RUN_ID_RE, self.run_id) is not None, "run_id",
                   f"must match {RUN_ID_RE}, got {self.run_id!r}")
        _check(self.id_column != self.text_column, "text_column", "must differ from id_column")
        _check(all(self.keep_columns) and len(set(self.keep_columns)) == len(self.keep_columns), "keep_columns",
               f"names must be non-empty and given once, got {list(self.keep_columns)}")
        _check(self.actors >= 0, "actors", f"must be >= 0 (0: from the cluster), got {self.actors}")
        _check(self.cpus_per_actor > 0, "cpus_per_actor", f"must be > 0, got {self.cpus_per_actor}")
        _check(self.batch_size >= 0, "batch_size", f"must be >= 0 (0: from the device), got {self.batch_size}")
        _check(self.unit_rows >= 1, "unit_rows", f"must be >= 1, got {self.unit_rows}")
        _check(self.max_text_chars >= 1, "max_text_chars", f"must be >= 1, got {self.max_text_chars}")
        _check(self.max_id_chars >= 1, "max_id_chars", f"must be >= 1, got {self.max_id_chars}")
        _check(self.max_drift is None or self.max_drift >= 0, "max_drift", f"must be >= 0, got {self.max_drift}")
        _check(self.lock_ttl > 0, "lock_ttl", f"must be > 0, got {self.lock_ttl}")
        _check(self.explain >= 0, "explain", f"must be >= 0, got {self.explain}")
        _check(self.precision in SCORE_PRECISIONS, "precision",
               f"must be one of {SCORE_PRECISIONS}, got {self.precision!r}")
        _check(not (self.precision == "int8" and self.use_gpu), "precision", "int8 is for CPU actors; use bf16 on GPU")
        _check(not (self.precision == "int8" and self.explain), "precision",
               "explanations read the fp32 convolutions; score with --explain at fp32")
        if self.output_table:
            _check(re.fullmatch(TABLE_RE, self.output_table) is not None, "output_table",
                   f"must be namespace.table (letters, digits, _), got {self.output_table!r}")
        _check(re.fullmatch(CATALOG_RE, self.catalog) is not None, "catalog",
               f"must match {CATALOG_RE}, got {self.catalog!r}")
        _check(self.catalog == "default" or bool(self.output_table or self.input_table), "catalog",
               "needs output_table or input_table")
        if self.input_table:
            _check(re.fullmatch(TABLE_RE, self.input_table) is not None, "input_table",
                   f"must be namespace.table (letters, digits, _), got {self.input_table!r}")
            _check(self.input_table not in (self.output_table, self.output_table + DEAD_LETTER_SUFFIX), "input_table",
                   "is the output table; the scores would become input of the next night")
        _check(self.since_snapshot is None or bool(self.input_table), "since_snapshot", "needs input_table")

    @property
    def run_key(self) -> str:
        """The run's partition under each dataset of output: run_date=YYYY-MM-DD or run=ID (not run_id=,
        which readers would merge with the run_id column every row carries)."""
        return f"run_date={self.run_date}" if self.run_date else f"run={self.run_id}"


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
        return True
    except ValueError:
        return False


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def model_config_from_dict(d: dict[str, Any]) -> ModelConfig:
    # models saved before the n-gram branch (or its IDF weights) existed have no such key, and no such weights
    return ModelConfig(**{"ngram_buckets": 0, "ngram_idf": False, **d})


def train_config_from_dict(d: dict[str, Any]) -> TrainConfig:
    d = dict(d)
    d["model"] = ModelConfig(**d.get("model", {}))
    d["tokenizer"] = TokenizerConfig(**d.get("tokenizer", {}))
    return TrainConfig(**d)
