"""The scoring benchmark behind jobs/bench.py: figures, not assertions.

(a) the bare ceiling: one process, the same tokenizer and model, a tight loop over the same Parquet
    files on the same cores; (b) the scoring run end to end (textcnn.score: plan, Ray Data pipeline,
    reconcile, commit), Parquet in -> scores out; (c) the tokenizer alone on one core; (d) peak memory
    of the driver and of a scoring actor at 1x and at `scale` x the corpus.
"""

from __future__ import annotations

import glob
import logging
import os
import resource
import threading
import time
from dataclasses import dataclass, field

import pyarrow.parquet as pq
import torch

from textcnn import artifacts, runtime
from textcnn.config import ModelConfig, ScoreConfig, TokenizerConfig
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN, make_corpus
from textcnn.model import TextCNN
from textcnn.scorer import probabilities
from textcnn.text import VocabBuilder

log = logging.getLogger(__name__)

TARGET_RATIO, TARGET_MEMORY, FASTTEXT_DOCS_PER_S = 0.85, 1.2, 60_000


def untrained_model(path: str) -> str:
    """A default-sized model over the sample's vocabulary: it costs what a trained one costs."""
    builder = VocabBuilder(TokenizerConfig(max_length=64))
    builder.update(pq.read_table(SAMPLE_TRAIN, columns=["text"]).column("text").to_pylist())
    tokenizer = builder.build()
    config = ModelConfig(vocab_size=len(tokenizer), num_classes=2, kernel_sizes=(3, 4, 5))
    torch.manual_seed(0)
    artifacts.save(path, TextCNN(config).state_dict(), config, tokenizer, ["fresh", "rotten"], {})
    return path


def corpus(folder: str, rows: int, copies_per_file: int = 5) -> int:
    """About `rows` rows of the held-out sample's texts (made once), in files of the same size
    (6,375 rows) whatever the corpus size, so a larger corpus means more files, not larger ones."""
    copies = max(1, round(rows / pq.read_metadata(SAMPLE_TEST).num_rows))
    if not glob.glob(os.path.join(folder, "*.parquet")):
        return make_corpus(SAMPLE_TEST, folder, copies, max(1, copies // copies_per_file))
    return sum(pq.read_metadata(f).num_rows for f in glob.glob(os.path.join(folder, "*.parquet")))


def bare_loop(model_dir: str, folder: str, threads: int) -> float:
    """Rows/s of read -> tokenize -> score in one process, no Ray."""
    torch.set_num_threads(threads)
    loaded = artifacts.load(model_dir)
    rows, started = 0, time.perf_counter()
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=["id", "text"]):
            ids = loaded.tokenizer.encode(batch.column(1).to_pylist())        # (B, L)
            probabilities(loaded.model, ids, len(loaded.labels), torch.device("cpu"))
            rows += batch.num_rows
    return rows / (time.perf_counter() - started)


def tokenizer_speed(model_dir: str, folder: str, max_rows: int = 200_000) -> float:
    """Docs/s of the tokenizer alone, on one core."""
    loaded = artifacts.load(model_dir)
    texts = []
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        texts += pq.read_table(path, columns=["text"]).column(0).to_pylist()
        if len(texts) >= max_rows:
            break
    started = time.perf_counter()
    for i in range(0, len(texts), 8192):
        loaded.tokenizer.encode(texts[i:i + 8192])
    return len(texts) / (time.perf_counter() - started)


class ActorMemory:
    """Samples the private resident memory (RssAnon) of this machine's Scorer actors while a run goes
    on, and keeps each one's peak. Private, because an actor's RSS also counts the pages of Ray's
    shared object store it has touched, which grow with the queue, not with the actor."""

    def __init__(self) -> None:
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    @staticmethod
    def _pids() -> list[int]:
        """Scorer actor processes of this machine: Ray titles them ray::MapWorker(MapBatches(Scorer))."""
        pids = []
        for entry in os.listdir("/proc"):
            try:
                title = open(f"/proc/{entry}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if entry.isdigit() and title.startswith("ray::") and "Scorer" in title:
                pids.append(int(entry))
        return pids

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            for pid in self._pids():
                try:
                    status = open(f"/proc/{pid}/status").read()
                except OSError:
                    continue
                anon = int(next(line for line in status.splitlines() if line.startswith("RssAnon")).split()[1])
                self.peak[pid] = max(self.peak.get(pid, 0), anon * 1024)

    def __enter__(self) -> ActorMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def max_bytes(self) -> int:
        return max(self.peak.values(), default=0)


@dataclass
class PipelineRun:
    rows: int
    seconds: float
    actor_peak_bytes: int
    driver_peak_bytes: int
    manifest: dict = field(repr=False, default_factory=dict)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def pipeline(config: ScoreConfig) -> PipelineRun:
    """The scoring run end to end; Ray is started beforehand and not timed."""
    from textcnn.score import score
    runtime.ensure_ray()
    started = time.perf_counter()
    with ActorMemory() as memory:
        summary = score(config)
    seconds = time.perf_counter() - started
    driver = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return PipelineRun(summary.rows_in, seconds, memory.max_bytes, driver, summary.manifest)


