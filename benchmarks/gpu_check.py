"""The pieces of jobs/gpu_check.py: the whole project on one GPU node under Ray, measured.

`textcnn train --gpus` and `textcnn score --gpus` run as subprocesses of the check, each joining the
one local Ray the check started (so Ray starts once); around the scoring run the check samples
nvidia-smi, the scoring actors' memory and the score driver's peak RSS. Beside it: the host's
tokenization ceiling (the tokenizer alone in one process per core, no Ray) and the GPU scores
against the CPU Scorer's on the same rows. Heavy imports (torch, Ray) stay inside the functions: the
ceiling's processes are spawned and import this module.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = str(Path(__file__).resolve().parents[1])
NO_GPU = "no GPU"


@dataclass
class Step:
    """One CLI subprocess: its exit status, wall seconds, last stdout line and whether it timed out."""
    returncode: int
    seconds: float
    last_line: str
    timed_out: bool
    driver_peak_bytes: int = 0     # VmHWM of the process, read until it exited

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def cli(args: list[str], ray_address: str, timeout: float, log_path: str) -> Step:
    """`python -m textcnn ARGS` joined to ray_address, in its own process group, killed (SIGTERM,
    then SIGKILL) after timeout seconds. Its stderr goes to ours (the epochs' lines, progress) and to
    nowhere else; its stdout (the command's summary line) to log_path."""
    from benchmarks.bench import proc_status
    env = {**os.environ, "RAY_ADDRESS": ray_address,
           "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p)}
    started, peak, timed_out = time.perf_counter(), 0, False
    with open(log_path, "w") as out:
        # cwd=REPO: `python -m` puts the working directory first on the path, before PYTHONPATH
        process = subprocess.Popen([sys.executable, "-m", "textcnn", *args], cwd=REPO, env=env, stdout=out,
                                   start_new_session=True)
        while process.poll() is None:
            peak = max(peak, proc_status(process.pid, ("VmHWM",))[0])
            if time.perf_counter() - started > timeout:
                timed_out = True
                _stop(process)
                break
            time.sleep(0.2)
    lines = [line for line in Path(log_path).read_text().splitlines() if line.strip()]
    return Step(process.returncode, time.perf_counter() - started, lines[-1] if lines else "", timed_out, peak)


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the process group (the CLI stops within seconds), SIGKILL 20 s later."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait)
            return
        except (ProcessLookupError, subprocess.TimeoutExpired):
            continue


class GpuSampler:
    """nvidia-smi's utilization.gpu (%) and memory.used (MiB) every interval_ms, in one nvidia-smi
    process (-lms) read by a thread, while the block runs. `error` says why there are no samples."""

    QUERY = ["--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]

    def __init__(self, interval_ms: int = 500) -> None:
        self.interval_ms = interval_ms
        self.samples: list[tuple[float, float, float]] = []      # (seconds since start, util %, MiB)
        self.error: str | None = None
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi") is None:
            self.error = "nvidia-smi not found"
            return self
        self._started = time.perf_counter()
        self._process = subprocess.Popen(["nvidia-smi", *self.QUERY, "-lms", str(self.interval_ms)],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            parts = [p.strip() for p in line.split(",")]
            try:                                     # first GPU's line only: one GPU per node here
                util, mem = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                self.error = self.error or f"nvidia-smi said: {line.strip()[:200]}"
                continue
            self.samples.append((time.perf_counter() - self._started, util, mem))

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            if self._thread is not None:
                self._thread.join(5)
        if self._process is not None and not self.samples and not self.error:
            self.error = "nvidia-smi gave no samples"

    def summary(self) -> dict[str, Any]:
        """Mean busy % over every sample and over the span from the first to the last busy sample
        (the scoring itself, without the process's start, plan and commit); peak memory used."""
        if not self.samples:
            why = self.error or NO_GPU
            return {"gpu_samples": 0, "gpu_busy_mean_pct": why, "gpu_busy_mean_pct_while_scoring": why,
                    "gpu_memory_peak_mib": why}
        utils = [u for _, u, _ in self.samples]
        busy = [i for i, u in enumerate(utils) if u > 0]
        span = utils[busy[0]:busy[-1] + 1] if busy else utils
        return {"gpu_samples": len(utils), "gpu_busy_mean_pct": round(sum(utils) / len(utils), 1),
                "gpu_busy_mean_pct_while_scoring": round(sum(span) / len(span), 1),
                "gpu_busy_seconds": round(len(span) * self.interval_ms / 1000, 1),
                "gpu_memory_peak_mib": max(m for _, _, m in self.samples)}


# --- the host's tokenization ceiling -------------------------------------------------------------

def _tokenize_for(vocab_path: str, texts_path: str, seconds: float, barrier: Any, results: Any) -> None:
    """One ceiling process: load the tokenizer and the texts, wait for the others, then encode
    8192-row batches (the read stage's size) for `seconds`; put (rows, seconds)."""
    import pyarrow.parquet as pq

    from textcnn.core.text import Tokenizer
    tokenizer = Tokenizer.from_dict(json.loads(Path(vocab_path).read_text()))
    texts = pq.read_table(texts_path, columns=["text"]).column(0).to_pylist()
    batch = (texts * (8192 // len(texts) + 1))[:8192]
    tokenizer.encode(batch[:256])                                      # warm-up
    barrier.wait()
    rows, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tokenizer.encode(batch)
        rows += len(batch)
    results.put((rows, time.perf_counter() - started))


def tokenization_ceiling(model_dir: str, texts_path: str, processes: int, seconds: float = 5.0,
                         timeout: float = 120.0) -> dict[str, Any]:
    """Rows/s of the model's tokenizer alone on `processes` cores at once (one spawned process each,
    no Ray), over the texts of one corpus file: what the CPU stage of a run could give at most."""
    ctx = multiprocessing.get_context("spawn")      # no fork of a process holding Ray's threads
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    vocab = os.path.join(model_dir, "vocab.json")
    workers = [ctx.Process(target=_tokenize_for, args=(vocab, texts_path, seconds, barrier, results), daemon=True)
               for _ in range(processes)]
    for w in workers:
        w.start()
    got, deadline = [], time.monotonic() + timeout
    try:
        while len(got) < processes:
            got.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
    finally:
        for w in workers:
            w.join(5)
            if w.is_alive():
                w.kill()
    rates = [rows / secs for rows, secs in got]
    return {"ceiling_processes": processes, "tokenize_ceiling_rows_per_s": round(sum(rates)),
            "tokenize_rows_per_s_per_process": round(sum(rates) / len(rates))}


# --- GPU scores against the CPU Scorer's -----------------------------------------------------------

def parity(model_dir: str, scores_dir: str, texts_by_id: dict[str, str], rows: int,
           tolerance: float) -> dict[str, Any]:
    """The run's probabilities for its first `rows` scored rows against the CPU Scorer's (fp32) on
    the same texts. Corpus ids are the sample's ids with '#copy' appended (demo.make_corpus)."""
    import numpy as np
    import pyarrow.parquet as pq

    from textcnn.scoring.scorer import Scorer
    from textcnn.scoring.stages import PROB_PREFIX
    scorer = Scorer(model_dir, use_gpu=False, threads=os.cpu_count() or 1, precision="fp32")
    columns = ["id"] + [PROB_PREFIX + label for label in scorer.loaded.labels]
    tables, have = [], 0
    for path in sorted(glob.glob(os.path.join(scores_dir, "**", "*.parquet"), recursive=True)):
        tables.append(pq.read_table(path, columns=columns))
        have += tables[-1].num_rows
        if have >= rows:
            break
    if not tables:
        return {"parity_rows": 0, "parity": f"no score files under {scores_dir}"}
    import pyarrow as pa
    table = pa.concat_tables(tables).slice(0, rows)
    ids = table.column("id").to_pylist()
    texts = [texts_by_id[i.rsplit("#", 1)[0]] for i in ids]
    run = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in columns[1:]], axis=1)
    cpu = scorer.probabilities(scorer.loaded.tokenizer.encode(texts))
    diff = float(np.abs(run - cpu).max())
    return {"parity_rows": len(ids), "parity_max_abs_diff": round(diff, 6), "parity_tolerance": tolerance,
            "parity_same_label_share": round(float((run.argmax(1) == cpu.argmax(1)).mean()), 5),
            "parity": "equal" if diff <= tolerance else "DIFFERENT"}


# --- the report ------------------------------------------------------------------------------------

@dataclass
class Report:
    figures: dict[str, Any] = field(default_factory=dict)

    def add(self, **figures: Any) -> None:
        self.figures.update(figures)

    def lines(self) -> list[str]:
        f, mib = self.figures, 2**20

        def n(key: str, fmt: str = ",.0f") -> str:
            value = f.get(key, "not measured")
            return format(value, fmt) if isinstance(value, (int, float)) else str(value)
        gpu = f.get("gpu") or NO_GPU
        ratio = f.get("rows_per_s_over_ceiling")
        verdict = ("met" if ratio >= 0.8 else "NOT met") if isinstance(ratio, float) else "not measured"

        gpu_line = (f"GPU busy: mean {n('gpu_busy_mean_pct', '.1f')} % over {n('gpu_samples')} samples of "
                    f"nvidia-smi, {n('gpu_busy_mean_pct_while_scoring', '.1f')} % from the first to the last busy one; "
                    f"GPU memory peak {n('gpu_memory_peak_mib')} MiB") if f.get("gpu_samples") else \
            f"GPU busy: {f.get('gpu_busy_mean_pct', NO_GPU)}"

        def mebi(key: str) -> str:
            value = f.get(key)
            return format(value / mib, ",.0f") if isinstance(value, int) and value else "not seen"
        return [
            f"gpu_check on {gpu}: torch {f.get('torch')}, ray {f.get('ray')}, {f.get('host_cpus')} CPUs; "
            f"Ray has {f.get('ray_cpus')} CPU(s), {f.get('ray_gpus')} GPU(s)",
            f"train ({f.get('train_mode')}, 1 worker): {f.get('train_status')} in {n('train_seconds', '.1f')} s; "
            f"{f.get('train_line', '')}",
            f"corpus: {n('rows')} rows in {n('corpus_files')} files ({n('corpus_seconds', '.1f')} s to make)",
            f"tokenization ceiling ({f.get('ceiling_processes')} processes, tokenizer alone): "
            f"{n('tokenize_ceiling_rows_per_s')} rows/s ({n('tokenize_rows_per_s_per_process')} per process)",
            f"scoring run ({f.get('score_mode')}): {f.get('score_status')}; {n('score_rows')} rows in "
            f"{n('score_run_seconds', '.1f')} s = {n('rows_per_s')} rows/s (the run, plan to commit; the "
            f"process: {n('score_process_seconds', '.1f')} s)",
            f"rows/s / tokenization ceiling: {n('rows_per_s_over_ceiling', '.2f')}   [target >= 0.8: {verdict}]",
            gpu_line,
            f"peak memory: score driver {mebi('driver_peak_bytes')} MiB RSS; a scoring actor "
            f"{mebi('actor_peak_private_bytes')} MiB private (RssAnon)",
            f"{f.get('score_mode', 'run')} scores vs CPU Scorer (fp32), {n('parity_rows')} rows: max |diff| "
            f"{n('parity_max_abs_diff', '.6f')} (tolerance {f.get('parity_tolerance')}): "
            f"{f.get('parity', 'not measured')}; "
            f"same label on {n('parity_same_label_share', '.2%')}",
            f"total {n('total_seconds', '.1f')} s",
        ]
