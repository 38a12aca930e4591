"""jobs/bench.py runs end to end and prints every figure (their values are not asserted: no timed tests)."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench import untrained_model

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_bench_prints_the_ceiling_the_run_memory_small_files_the_tokenizer_and_int8(tmp_path):
    model = untrained_model(str(tmp_path / "model"))   # the bench's own default trains one
    proc = subprocess.run([sys.executable, "jobs/bench.py", "--rows", "1275", "--scale", "2", "--model",
                           model, "--workdir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for needle in ("bare loop", "scoring run", "x bare", "tokenizer alone", "1,275 rows:", "2,550 rows:",
                   "actor peak at 2x the corpus", "the run once started", "scoring actors",
                   "fastText predict, same texts", "x fastText", "int8, 1 torch thread", "(int8)",
                   "the 1,275 rows as files of 128 rows (10 files, 1 unit):"):
        assert needle in out, out
    assert "actor     0 MiB" not in out        # the actor's memory was really read


def test_bench_driver_memory_prints_peaks_slope_id_pass_share_and_the_ratio_to_the_old_path(tmp_path):
    proc = subprocess.run([sys.executable, "jobs/bench.py", "--driver-memory", "--driver-memory-rows", "3000,6000",
                           "--driver-memory-old-rows", "6000", "--workdir", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for needle in ("3,000 rows: driver peak", "6,000 rows: driver peak", "driver slope:", "bytes/row",
                   "id pass at 6,000 rows:", "old driver path (", "rows/s at 6,000 rows, new / old ="):
        assert needle in out, out
    assert "driver peak      0 MiB" not in out        # the driver's memory was really read
