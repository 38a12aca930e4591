"""The scoring benchmark behind jobs/bench.py: figures, not assertions.

(a) the bare ceiling: one process, the same tokenizer and model, a tight loop over the same Parquet
    files on the same cores; (b) the scoring run end to end (textcnn.scoring.run: plan, Ray Data pipeline,
    reconcile, commit), Parquet in -> scores out, at 1x and `scale` x the corpus, whose difference
    gives the run's marginal rate and its fixed cost; (c) the tokenizer alone on one core against
    fastText's whole prediction on the same texts, in the same run; (d) int8 against fp32: rows/s of
    the bare loop and held-out accuracy; (e) peak memory of the driver and of a scoring actor;
(f) the driver's peak memory against the corpus size, beside the old driver path.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from textcnn import runtime
from textcnn.config import ModelConfig, ScoreConfig, TokenizerConfig, TrainConfig
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.text import VocabBuilder
from textcnn.demo import make_corpus
from textcnn.sample import SAMPLE_LABELS, SAMPLE_TEST, SAMPLE_TRAIN
from textcnn.scoring.records import Manifest
from textcnn.scoring.scorer import Scorer
from textcnn.training.evaluate import evaluate_parquet

log = logging.getLogger(__name__)

TARGET_RATIO, TARGET_MEMORY = 0.85, 1.2
FASTTEXT_REFERENCE = "60,000-110,000"     # docs/s, the datasets' REFERENCE.md


def untrained_model(path: str) -> str:
    """A default-sized model over the sample's vocabulary: it costs what a trained one costs."""
    builder = VocabBuilder(TokenizerConfig(max_length=64, split="words"))
    builder.update(pq.read_table(SAMPLE_TRAIN, columns=["text"]).column("text").to_pylist())
    tokenizer = builder.build()
    config = ModelConfig(vocab_size=len(tokenizer), num_classes=2, kernel_sizes=(3, 4, 5))
    torch.manual_seed(0)
    artifacts.save(path, TextCNN(config).state_dict(), config, tokenizer, ["fresh", "rotten"], {})
    return path


def trained_model(path: str, workers: int) -> str:
    """A model trained with the defaults on the bundled sample (made once): the int8 accuracy change
    needs a model that has learnt something, and the throughput is that of a real model. No refit:
    it would not change the model's size or cost, only the bench's start."""
    if not os.path.exists(os.path.join(path, "config.json")):
        from textcnn.training.train import fit
        fit(TrainConfig(train=SAMPLE_TRAIN, output=path, workers=workers, refit=False))
    return path


def corpus(folder: str, rows: int, copies_per_file: int = 5) -> int:
    """About `rows` rows of the held-out sample's texts (made once), in files of the same size
    (6,375 rows) whatever the corpus size, so a larger corpus means more files, not larger ones.
    (In files of 51,000 rows, a unit each, an actor's peak memory followed the number of units in
    flight: 1.86x from 100,000 to 300,000 rows, in one run.)"""
    copies = max(1, round(rows / pq.read_metadata(SAMPLE_TEST).num_rows))
    if not glob.glob(os.path.join(folder, "*.parquet")):
        return make_corpus(SAMPLE_TEST, folder, copies, max(1, copies // copies_per_file))
    return rows_in(folder)


def recut(source: str, folder: str, rows_per_file: int) -> None:
    """source's Parquet files (a folder) rewritten, in order, as files of rows_per_file rows (made
    once): the same rows as many small files, as a streaming sink leaves them."""
    if not glob.glob(os.path.join(folder, "*.parquet")):
        os.makedirs(folder, exist_ok=True)
        table = pa.concat_tables(pq.read_table(p) for p in sorted(glob.glob(os.path.join(source, "*.parquet"))))
        for i, start in enumerate(range(0, table.num_rows, rows_per_file)):
            pq.write_table(table.slice(start, rows_per_file), os.path.join(folder, f"part-{i:06d}.parquet"))


def rows_in(folder: str) -> int:
    """Rows of the Parquet files in folder, from their footers."""
    files = glob.glob(os.path.join(folder, "*.parquet"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.parquet files to score")
    return sum(pq.read_metadata(f).num_rows for f in files)


def _texts(folder: str, max_rows: int, text_column: str = "text") -> list[str]:
    texts: list[str] = []
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet"))):
        texts += pq.read_table(path, columns=[text_column]).column(0).to_pylist()
        if len(texts) >= max_rows:
            break
    return texts[:max_rows]


def bare_loop(model_dir: str, folder: str, threads: int, precision: str = "fp32", max_files: int = 0,
              columns: tuple[str, str] = ("id", "text"), use_gpu: bool = False) -> float:
    """Rows/s of read -> tokenize -> score in one process, no Ray (over the first max_files files; 0: all),
    on the device and at the precision a scoring actor would use."""
    scorer = Scorer(model_dir, use_gpu=use_gpu, threads=threads, precision=precision)
    rows, started = 0, time.perf_counter()
    for path in sorted(glob.glob(os.path.join(folder, "*.parquet")))[:max_files or None]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=list(columns)):
            scorer.probabilities(scorer.loaded.tokenizer.encode(batch.column(1).to_pylist()))   # (B, C)
            rows += batch.num_rows
    return rows / (time.perf_counter() - started)


def _rate(fn, items: list) -> float:
    started = time.perf_counter()
    fn(items)
    return len(items) / (time.perf_counter() - started)


def _fasttext_predictor():
    """fastText (the `bench` extra) trained as REFERENCE.md's peer on the sample, or None."""
    try:
        import fasttext
    except ImportError:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        for row in pq.read_table(SAMPLE_TRAIN, columns=["text", "label"]).to_pylist():
            f.write(f"__label__{row['label']} {_one_line(row['text'])}\n")
        f.flush()
        model = fasttext.train_supervised(f.name, wordNgrams=2, dim=100, epoch=5, verbose=0)
    return lambda texts: model.predict([_one_line(t) for t in texts])


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower())       # fastText reads one example per line


@dataclass
class TokenizerSpeed:
    ours: float                  # docs/s, our tokenizer, one core
    fasttext: float | None       # docs/s, fastText's whole prediction on the same texts; None: not installed


def tokenizer_speed(model_dir: str, folder: str, max_rows: int = 100_000, rounds: int = 3,
                    text_column: str = "text") -> TokenizerSpeed:
    """Docs/s of the tokenizer alone and of fastText's prediction, on one core, measured in turns
    (best of `rounds` each) so that both see the same machine."""
    tokenizer = artifacts.load(model_dir).tokenizer
    texts = _texts(folder, max_rows, text_column)
    def ours(items: list) -> None:
        for i in range(0, len(items), 8192):
            tokenizer.encode(items[i:i + 8192])
    predict = _fasttext_predictor()
    best, best_ft = 0.0, 0.0
    for _ in range(rounds):
        best = max(best, _rate(ours, texts))
        if predict:
            best_ft = max(best_ft, _rate(predict, texts))
    return TokenizerSpeed(best, best_ft if predict else None)


@dataclass
class Int8Report:
    fp32_rows_per_s: float
    int8_rows_per_s: float
    fp32_accuracy: float | None      # None: no labelled data with the model's classes
    int8_accuracy: float | None


def int8_report(model_dir: str, folder: str, labelled: str | None = None, rounds: int = 3, max_files: int = 8,
                columns: tuple[str, str] = ("id", "text")) -> Int8Report:
    """The bare loop at fp32 and at int8 on one torch thread, as a CPU scoring actor runs, in turns
    (best of `rounds` each: this machine's speed drifts by 20% within a minute), and both
    precisions' accuracy on labelled (default: the held-out sample, if the model has its classes)."""
    speed = {"fp32": 0.0, "int8": 0.0}
    for _ in range(rounds):
        for p in speed:
            speed[p] = max(speed[p], bare_loop(model_dir, folder, 1, p, max_files, columns))
    if labelled is None and artifacts.load(model_dir).labels == SAMPLE_LABELS:
        labelled = SAMPLE_TEST
    accuracy = {p: evaluate_parquet(model_dir, labelled, precision=p)["accuracy"] if labelled else None
                for p in speed}
    return Int8Report(speed["fp32"], speed["int8"], accuracy["fp32"], accuracy["int8"])


def _cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process's (command line, user + system CPU seconds) on this machine."""
    out, tick = {}, os.sysconf("SC_CLK_TCK")
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmd = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()        # after the command name, which may hold spaces
        out[int(entry)] = (cmd, (int(fields[11]) + int(fields[12])) / tick)
    return out


RAY_DATA_ACTORS = ("_StatsActor", "_AutoscalingCoordinatorActor", "ActorLocationTracker")


def _group(pid: int, cmd: str) -> str:
    if pid == os.getpid():
        return "driver"
    if cmd.startswith("ray::"):          # Ray titles its workers: ray::MapWorker(MapBatches(Scorer)), ...
        if "Scorer" in cmd:
            return "scoring actors"
        return "Ray Data's actors" if any(a in cmd for a in RAY_DATA_ACTORS) else "CPU tasks"
    return "Ray daemons" if "ray" in cmd else "other"


def cpu_by_group(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds spent between two _cpu_seconds() snapshots, by role in the run."""
    spent: dict[str, float] = {}
    for pid, (cmd, cpu) in after.items():
        group = _group(pid, cmd)
        spent[group] = spent.get(group, 0.0) + cpu - before.get(pid, (cmd, 0.0))[1]
    return spent


class ActorMemory:
    """Samples the private resident memory (RssAnon) of this machine's Scorer actors while a run goes
    on, and keeps each one's peak. Private, because an actor's RSS also counts the pages of Ray's
    shared object store it has touched, which grow with the queue, not with the actor. The driver's
    RSS is sampled too (its lifetime peak would count what the process did before the run), and
    every process's CPU time, so that the actors' last figure survives their exit."""

    def __init__(self) -> None:
        self.peak: dict[int, int] = {}
        self.driver_peak = 0
        self.cpu_seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            processes = _cpu_seconds()
            self.cpu_seen.update(processes)     # the actors exit with the run: keep their last figure
            for pid in (pid for pid, (cmd, _) in processes.items() if _group(pid, cmd) == "scoring actors"):
                [anon] = proc_status(pid, ("RssAnon",))
                if anon:                                    # 0: the actor is gone
                    self.peak[pid] = max(self.peak.get(pid, 0), anon)
            self.driver_peak = max(self.driver_peak, proc_status("self", ("VmRSS",))[0])

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
    manifest: Manifest | None = field(repr=False, default=None)
    cpu: dict[str, float] = field(default_factory=dict)   # CPU seconds by role, all processes of this machine

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def pipeline(config: ScoreConfig) -> PipelineRun:
    """The scoring run end to end; Ray is started beforehand and not timed."""
    from textcnn.scoring.run import score
    runtime.ensure_ray()
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    with ActorMemory() as memory:
        summary = score(config)
    seconds = time.perf_counter() - started
    return PipelineRun(summary.rows_in, seconds, memory.max_bytes, memory.driver_peak, summary.manifest,
                       cpu_by_group(cpu_before, {**memory.cpu_seen, **_cpu_seconds()}))


def marginal(small: PipelineRun, large: PipelineRun) -> tuple[float, float] | None:
    """From runs at two sizes: the run's rate once started (rows/s) and its fixed cost (seconds);
    None when the larger run was not the slower (corpora too small to tell)."""
    if large.seconds <= small.seconds:
        return None
    rate = (large.rows - small.rows) / (large.seconds - small.seconds)
    return rate, small.seconds - small.rows / rate


# --- the driver's memory against the corpus size (jobs/bench.py --driver-memory) ---------------------

# The last commit whose driver read every id (plan), found duplicates by sorting them and reconciled
# against them: the bench scores beside it, in the same invocation, for the rows/s ratio.
DRIVER_IDS_COMMIT = "f40840c"
SYNTHETIC_FILE_ROWS = 50_000
_WORDS = ("a good film bad great fun dull and slow the story is not worth it best movie of year "
          "actors play well plot boring funny sad").split()


def synthetic_corpus(folder: str, rows: int, file_rows: int = SYNTHETIC_FILE_ROWS, every: int = 500) -> int:
    """`rows` rows (made once) of 16-character ids and short texts, in files of file_rows: every
    `every`-th row of a file repeats an id of the file before it, and the row after it an id 100 rows
    earlier in its own file, so duplicates cross files and sit within them."""
    if glob.glob(os.path.join(folder, "*.parquet")):
        return rows_in(folder)
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    pool = pa.array([" ".join(rng.choice(_WORDS, size=rng.integers(3, 12))) for _ in range(4096)])
    for f, start in enumerate(range(0, rows, file_rows)):
        n = min(file_rows, rows - start)
        numbers = np.arange(start, start + n)
        numbers[every - 1::every] -= file_rows if f else 0                  # the file before's id
        numbers[every::every] = numbers[every::every] - min(100, every - 1)  # an id of its own file
        ids = pa.array([f"{k:016x}" for k in numbers.tolist()], pa.string())
        texts = pool.take(pa.array(rng.integers(0, len(pool), n)))
        pq.write_table(pa.table({"id": ids, "text": texts}), os.path.join(folder, f"part-{f:05d}.parquet"))
    return rows


@dataclass
class DriverRun:
    rows: int
    seconds: float                 # the run's wall time as its manifest gives it (plan to commit)
    driver_peak_bytes: int         # the driver process's peak RSS (VmHWM), whole process
    driver_private_bytes: int      # its peak private memory (RssAnon, sampled): without the pages of
                                   # Ray's shared object store and of mapped files it has touched
    id_pass_seconds: float | None  # None: the old driver path, whose id work is not timed apart

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def proc_status(pid: int | str, fields: tuple[str, ...]) -> list[int]:
    """Bytes of the given /proc/<pid>/status fields (0 once the process is gone)."""
    try:
        lines = open(f"/proc/{pid}/status").read().splitlines()
    except OSError:
        return [0] * len(fields)
    found = {line.split(":")[0]: 1024 * int(line.split()[1]) for line in lines if line.endswith("kB")}
    return [found.get(f, 0) for f in fields]


def driver_run(args: list[str], output: str, run_id: str, code: str) -> DriverRun:
    """`python -m textcnn score` with `code` first on the path, in its own local Ray, as cron runs it;
    its driver's peak RSS sampled until it exits, and its manifest read back."""
    env = {**os.environ, "PYTHONPATH": code, "RAY_ADDRESS": "local"}
    command = [sys.executable, "-m", "textcnn", "score", "--output", os.path.abspath(output), "--run-id", run_id,
               *args]
    # run in `code`: `python -m` puts the working directory first on the path, before PYTHONPATH
    process, peak, private = subprocess.Popen(command, env=env, cwd=code, stdout=subprocess.DEVNULL), 0, 0
    while process.poll() is None:
        hwm, anon = proc_status(process.pid, ("VmHWM", "RssAnon"))
        peak, private = max(peak, hwm), max(private, anon)
        time.sleep(0.2)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    manifest = json.loads(open(os.path.join(output, "_runs", f"run={run_id}", "_SUCCESS")).read())
    timings = manifest.get("timings", {})
    return DriverRun(manifest["input"]["rows"], manifest["wall_seconds"], peak, private,
                     timings.get("id_pass_seconds"))


def driver_ids_code(workdir: str, repo: str) -> str | None:
    """The textcnn package of DRIVER_IDS_COMMIT, unpacked once under workdir; None without git."""
    folder = os.path.join(workdir, f"textcnn-{DRIVER_IDS_COMMIT}")
    if os.path.exists(os.path.join(folder, "textcnn", "score.py")):
        return folder
    os.makedirs(folder, exist_ok=True)
    archive = subprocess.run(["git", "-C", repo, "archive", DRIVER_IDS_COMMIT, "textcnn"], capture_output=True)
    if archive.returncode:
        log.warning("no git history for the driver path: %s", archive.stderr.decode()[-300:])
        return None
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def slope(runs: list[DriverRun], private: bool = False) -> float:
    """Bytes of driver peak (RSS, or private) per input row: the least-squares line through (rows, peak)."""
    rows = np.array([r.rows for r in runs], float)
    peaks = np.array([r.driver_private_bytes if private else r.driver_peak_bytes for r in runs], float)
    return float(np.polyfit(rows, peaks, 1)[0]) if len(runs) > 1 else float("nan")
