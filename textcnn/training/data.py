"""Training's Ray Data plumbing: read Parquet, check columns, survey the training split, tokenize batches."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import ray.data
from ray.data import Dataset

from textcnn import storage
from textcnn.config import TrainConfig
from textcnn.core.rows import DataError
from textcnn.core.text import Tokenizer, VocabBuilder, cached_tokenizer, cjk_share
from textcnn.training.presets import Survey, split_mode

log = logging.getLogger(__name__)


def parquet_dataset(uri: str) -> pads.Dataset:
    """A Parquet file or folder opened by pyarrow (one listing; footers read only when asked)."""
    missing = storage.missing_reason(uri)
    if missing:
        raise DataError(f"{uri}: {missing}")
    fs, path = storage.resolve(uri)
    try:
        return pads.dataset(path, filesystem=fs, format="parquet")
    except (OSError, pa.ArrowInvalid) as e:
        raise DataError(f"{uri}: cannot read as Parquet: {storage.reason(e)}") from None


def check_columns(uri: str, columns: list[str], what: str) -> pads.Dataset:
    """The opened dataset, once it is known to have every column; else a DataError naming uri."""
    try:
        dataset = parquet_dataset(uri)
    except DataError as e:
        raise DataError(f"{what} {e}") from None
    missing = [c for c in columns if c not in dataset.schema.names]
    if missing:
        raise DataError(f"{what} {uri} has no column(s) {missing}; it has {dataset.schema.names}")
    return dataset


def read_parquet(uri: str, columns: list[str]) -> Dataset:
    fs, path = storage.resolve(uri)
    # Ray 2.60's V2 Parquet reader spends ~70 ms per file before reading (1,000 small files on the
    # loopback S3: 73 s, against 23 s with the V1 reader, which lists once and samples footers).
    ray.data.DataContext.get_current().use_datasource_v2 = False
    return ray.data.read_parquet(path, filesystem=fs).select_columns(columns)


def check_labelled(config: TrainConfig) -> None:
    """Fail before Ray starts when the training or validation data lacks its columns."""
    columns = [config.text_column, config.label_column]
    for uri, what in ((config.train, "training data"), (config.val, "validation data")):
        if uri and check_columns(uri, columns, what).count_rows() == 0:
            raise DataError(f"{what} {uri} has no rows")


def read_labelled(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """Train and validation datasets; validation is carved from train when config.val is None."""
    columns = [config.text_column, config.label_column]
    train = read_parquet(config.train, columns)
    if config.val:
        return train, read_parquet(config.val, columns)
    return tuple(train.train_test_split(test_size=config.val_fraction, shuffle=True, seed=config.seed))


def _label_lists(column: pa.ChunkedArray | pa.Array, multi_label: bool) -> list[list[str]]:
    if multi_label:
        return [[str(v) for v in row] for row in column.to_pylist()]
    return [[str(v)] for v in column.to_pylist()]


def survey(ds: Dataset, config: TrainConfig) -> Survey:
    """One streaming pass over the training texts and labels (a list column means multi-label). The
    first batch (up to 8,192 rows) says whether the corpus is CJK, before any token is counted: the
    split mode, when "auto", follows from that (textcnn.training.presets.split_mode)."""
    label_type = ds.schema().base_schema.field(config.label_column).type
    multi_label = pa.types.is_list(label_type) or pa.types.is_large_list(label_type)
    builder, counts, rows, lengths, share = None, Counter(), 0, [], 0.0
    for batch in ds.iter_batches(batch_size=8192, batch_format="pyarrow"):
        label_col = batch.column(config.label_column)
        if label_col.null_count:
            raise DataError(f"training data {config.train}: {label_col.null_count} row(s) with a null "
                            f"'{config.label_column}'")
        for names in _label_lists(label_col, multi_label):
            counts.update(set(names))
        texts = batch.column(config.text_column).to_pylist()
        if builder is None:
            share = cjk_share(texts)
            builder = VocabBuilder(split_mode(config.tokenizer, share))
        lengths.extend(len(tokens) for tokens in builder.update(texts))
        rows += batch.num_rows
    if not any(lengths):
        raise DataError(f"training data {config.train}: every text in column '{config.text_column}' is empty "
                        f"({rows} rows, no token); nothing to learn from")
    if len(counts) < 2:
        raise DataError(f"training data {config.train}: needs at least 2 classes in "
                        f"'{config.label_column}', found {sorted(counts)} in {rows} rows")
    labels = sorted(counts)
    return Survey(builder, labels, multi_label, [counts[name] for name in labels], rows,
                  int(np.percentile(lengths, 95)) if lengths else 1, share)


def encode_labels(column: pa.ChunkedArray | pa.Array, label_ids: dict[str, int], multi_label: bool,
                  where: str) -> np.ndarray:
    """Class ids (N,) int64, or multi-hot rows (N, C) float32; a label outside label_ids is named."""
    names = _label_lists(column, multi_label)
    unknown = sorted({n for row in names for n in row} - label_ids.keys())
    if unknown:
        raise DataError(f"{where}: labels {unknown[:10]} are not among the training classes {sorted(label_ids)}")
    if not multi_label:
        return np.array([label_ids[row[0]] for row in names], dtype=np.int64)
    out = np.zeros((len(names), len(label_ids)), dtype=np.float32)
    for r, row in enumerate(names):
        out[r, [label_ids[n] for n in row]] = 1.0
    return out


def _encode_labelled(batch: pa.Table, vocab: dict[str, Any], vocab_hash: str, label_ids: dict[str, int],
                     multi_label: bool, text_column: str, label_column: str) -> dict[str, np.ndarray]:
    ids = cached_tokenizer(vocab, vocab_hash).encode(batch.column(text_column).to_pylist())  # (B, L)
    labels = encode_labels(batch.column(label_column), label_ids, multi_label, f"column '{label_column}'")
    return {"ids": ids, "label": labels}


def encode_labelled(ds: Dataset, tokenizer: Tokenizer, labels: list[str], multi_label: bool,
                    config: TrainConfig) -> Dataset:
    return ds.map_batches(
        _encode_labelled, batch_format="pyarrow", num_cpus=0.5,
        fn_kwargs=dict(vocab=tokenizer.to_dict(), vocab_hash=tokenizer.hash(),
                       label_ids={name: i for i, name in enumerate(labels)}, multi_label=multi_label,
                       text_column=config.text_column, label_column=config.label_column))
