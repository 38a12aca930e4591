"""jobs/gpu_check.py's dry run (--allow-cpu) at a tiny size: every step but training (covered by the
CLI's own tests; here a model is given) runs and reports, and the run's scores equal the CPU
Scorer's. Figures are not asserted: no timed tests."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.bench import untrained_model

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_dry_run_reports_every_figure_and_cpu_parity(tmp_path):
    model = untrained_model(str(tmp_path / "model"))
    out = tmp_path / "figures.json"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "OUT")}   # a private local Ray
    proc = subprocess.run([sys.executable, "jobs/gpu_check.py", "--rows", "3000", "--allow-cpu", "--model", model,
                           "--workdir", str(tmp_path / "w"), "--out", str(out), "--ceiling-seconds", "1",
                           "--parity-rows", "1000"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    for needle in ("tokenization ceiling (", "scoring run (", "rows/s / tokenization ceiling:", "GPU busy:",
                   "peak memory: score driver", "scores vs CPU Scorer (fp32), 1,000 rows", ": equal;"):
        assert needle in proc.stdout, proc.stdout
    figures = json.loads(out.read_text())
    for key in ("rows_per_s", "tokenize_ceiling_rows_per_s", "rows_per_s_over_ceiling", "gpu_busy_mean_pct",
                "driver_peak_bytes", "actor_peak_private_bytes", "parity_max_abs_diff", "total_seconds"):
        assert key in figures, figures
    assert figures["score_rows"] == figures["rows"] == 2550          # 2 copies of the 1,275-row sample
    assert figures["parity"] == "equal" and figures["parity_rows"] == 1000
    assert figures["driver_peak_bytes"] > 0 and figures["actor_peak_private_bytes"] > 0
    if not torch.cuda.is_available():
        assert figures["parity_max_abs_diff"] < 1e-5 and figures["gpu_busy_mean_pct"] == "no GPU"
