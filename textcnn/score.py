"""Scoring: a Ray-free Scorer (tokens in, probabilities out) and the Ray Data pipeline around it.

    read_parquet -> select (id, text) -> tokenize (CPU tasks) -> Scorer (actor pool) -> write_parquet

Everything streams: blocks flow through the stages and nothing gathers the corpus on the driver.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pyarrow.fs import FileSystem
from ray.data import ActorPoolStrategy, SaveMode

from textcnn import artifacts, runtime, storage
from textcnn.config import ScoreConfig, to_dict
from textcnn.data import check_columns, count_rows, encode_texts, read_parquet
from textcnn.text import PAD_ID, trim

log = logging.getLogger(__name__)

PRED_LABEL, PRED_PROB, PROB_PREFIX = "predicted_label", "predicted_prob", "prob_"


class Scorer:
    """Loads a model directory once; each call maps a batch of token ids to class probabilities."""

    def __init__(self, model_uri: str, id_column: str, use_gpu: bool = False, threads: int = 1,
                 filesystem: FileSystem | None = None) -> None:
        torch.set_num_threads(threads)
        self.device = torch.device("cuda" if use_gpu else "cpu")
        self.loaded = artifacts.load(model_uri, self.device, filesystem)
        self.id_column = id_column
        self.labels = np.array(self.loaded.labels, dtype=object)

    def probabilities(self, ids: np.ndarray, chunk: int = 128) -> np.ndarray:
        """Class probabilities (B, C) of token ids (B, L).

        The model's cost grows with the padded width, so rows are sorted by length and run in chunks
        trimmed to their own longest row. Masked pooling makes each row's score independent of the
        chunk it lands in, so the result is the same as one full-width batch.
        """
        model, out = self.loaded.model, np.empty((len(ids), len(self.labels)), dtype=np.float32)
        order = np.argsort((ids != PAD_ID).sum(axis=1), kind="stable")
        with torch.inference_mode():
            for rows in np.array_split(order, max(1, -(-len(ids) // chunk))):
                x = torch.from_numpy(trim(ids[rows], model.min_length)).long().to(self.device)
                out[rows] = torch.softmax(model(x).float(), dim=1).cpu().numpy()
        return out

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        probs = self.probabilities(batch["ids"])
        best = probs.argmax(axis=1)
        out = {self.id_column: batch[self.id_column], PRED_LABEL: self.labels[best],
               PRED_PROB: probs[np.arange(len(best)), best]}
        for i, name in enumerate(self.loaded.labels):
            out[PROB_PREFIX + name] = probs[:, i]
        return out


@dataclass
class ScoreSummary:
    output: str
    rows_in: int
    rows_out: int
    seconds: float        # the Ray Data pipeline, actor start-up included; not Ray's own start

    @property
    def rows_per_second(self) -> float:
        return self.rows_out / self.seconds if self.seconds > 0 else 0.0


def _actor_args(config: ScoreConfig) -> dict[str, Any]:
    return dict(compute=ActorPoolStrategy(size=config.actors), num_cpus=config.cpus_per_actor,
                num_gpus=1 if config.use_gpu else 0, batch_size=config.batch_size, batch_format="numpy",
                fn_constructor_kwargs=dict(model_uri=config.model, id_column=config.id_column,
                                           use_gpu=config.use_gpu,
                                           threads=max(1, int(config.cpus_per_actor)),
                                           filesystem=storage.filesystem(config.model)))


def score(config: ScoreConfig) -> ScoreSummary:
    """Score config.input with config.model and write Parquet under config.output (replacing it)."""
    loaded = artifacts.load(config.model)   # fail on a bad model before any actor starts
    rows_in = check_columns(config.input, [config.id_column, config.text_column], "scoring input").count_rows()
    runtime.ensure_ray()
    runtime.require(config.actors * config.cpus_per_actor, config.actors if config.use_gpu else 0,
                    f"scoring with {config.actors} actor(s)")
    started = time.perf_counter()
    ds = read_parquet(config.input, [config.id_column, config.text_column])
    # Small inputs arrive as one block; split them so every actor gets work, without a shuffle.
    ds = ds.repartition(target_num_rows_per_block=max(config.batch_size, min(rows_in // (2 * config.actors),
                                                                                16 * config.batch_size)))
    ds = encode_texts(ds, loaded.tokenizer, config.id_column, config.text_column, config.batch_size)
    ds = ds.map_batches(Scorer, **_actor_args(config))
    fs, path = storage.resolve(config.output)
    ds.write_parquet(path, filesystem=fs, mode=SaveMode.OVERWRITE)
    rows_out = count_rows(config.output)
    summary = ScoreSummary(config.output, rows_in, rows_out, time.perf_counter() - started)
    storage.write_text(storage.join(config.output, "_score_config.json"), json.dumps(
        {"config": to_dict(config), "model_version": loaded.version, "vocab_hash": loaded.vocab_hash,
         "rows_in": rows_in, "rows_out": rows_out, "seconds": summary.seconds}, indent=2) + "\n")
    if rows_out != rows_in:
        raise RuntimeError(f"scored {rows_out} rows of {rows_in} read from {config.input}")
    return summary
