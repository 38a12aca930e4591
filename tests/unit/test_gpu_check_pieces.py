"""jobs/gpu_check.py without a GPU, nvidia-smi's samples, and the report of a check stopped early."""

import importlib.util
import os
import stat
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from benchmarks.gpu_check import NO_GPU, GpuSampler, Report

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def _job():
    spec = importlib.util.spec_from_file_location("gpu_check_job", ROOT / "jobs" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_and_without_allow_cpu_it_exits_1_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(_job().main, ["--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "f.json")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: gpu_check: torch sees no CUDA device; --allow-cpu runs the check on CPU"]
    assert not (tmp_path / "w").exists() and not (tmp_path / "f.json").exists()   # nothing started


def test_gpu_sampler_reads_nvidia_smi_lines(monkeypatch, tmp_path):
    fake = tmp_path / "nvidia-smi"           # what --format=csv,noheader,nounits prints, every -lms
    fake.write_text("#!/bin/sh\nfor line in '0, 500' '40, 900' '80, 1500' '0, 1400'; do echo \"$line\"; done\n"
                    "exec sleep 30\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    with GpuSampler() as gpu:
        for _ in range(100):
            if len(gpu.samples) == 4:
                break
            __import__("time").sleep(0.05)
    summary = gpu.summary()
    assert summary["gpu_samples"] == 4 and summary["gpu_busy_mean_pct"] == 30.0
    assert summary["gpu_busy_mean_pct_while_scoring"] == 60.0 and summary["gpu_memory_peak_mib"] == 1500.0


def test_without_nvidia_smi_the_gpu_figures_say_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with GpuSampler() as gpu:
        pass
    assert gpu.summary()["gpu_busy_mean_pct"] == "nvidia-smi not found"


def test_the_report_of_a_check_stopped_early_still_prints():
    lines = Report({"gpu": None, "rows": 10}).lines()
    assert any("not measured" in line for line in lines) and any(f"GPU busy: {NO_GPU}" in line for line in lines)
