"""`ray job submit` of jobs/train.py and jobs/score.py to a real Ray head started for this test."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import free_port, wait_for_port
from tests.procs import check_resumed, registered_epoch, stop_group
from textcnn import storage
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN
from textcnn.runs import read_run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)


def cluster_env(extra):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # the head runs the jobs' `python`: this virtual environment's; CLI clients need the auth mode
    env.update(extra, PATH=f"{BIN}:{env.get('PATH', '')}", RAY_AUTH_MODE="token")
    return env


@pytest.fixture(scope="module")
def ray_head(s3):
    """A Ray head on 127.0.0.1 with the dashboard (Jobs API), in its own process group."""
    gcs, dashboard = free_port(), free_port()
    # short, not under pytest's basetemp (deeper per xdist worker): Ray's socket paths max 107 bytes
    temp_dir = tempfile.mkdtemp(prefix="tc-head-")
    env = cluster_env(s3.env)        # the nodes' own AWS settings, as an instance role would give
    proc = subprocess.Popen(
        [f"{BIN}/ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
         "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--num-cpus", "2",
         "--temp-dir", str(temp_dir), "--disable-usage-stats"],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(dashboard, proc, "ray dashboard", timeout=120)
        yield f"http://127.0.0.1:{dashboard}", env
    finally:
        stop_group(proc, signal.SIGTERM, settle=5)       # Ray's daemons take ~30 s to finish on SIGTERM
        shutil.rmtree(temp_dir, ignore_errors=True)


def _submit(cmd, env, timeout):
    """Run `ray job submit`; a head just started may not have its job agent yet: retry that for 60 s."""
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(1)


def submit(address, env, job_id, *args, wait=True):
    cmd = [f"{BIN}/ray", "job", "submit", "--address", address, "--submission-id", job_id,
           *([] if wait else ["--no-wait"]), "--working-dir", ".", "--", "python", *args]
    proc = _submit(cmd, env, timeout=600 if wait else 120)
    if not wait:
        assert proc.returncode == 0, proc.stderr[-3000:]
        return None
    status = subprocess.run([f"{BIN}/ray", "job", "status", "--address", address, job_id], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert f"Job '{job_id}' succeeded" in status.stdout, \
        f"{status.stdout}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_submit_train_stop_resubmit_then_score_jobs_over_s3(ray_head, s3, tmp_path):
    """A training job stopped mid-way (`ray job stop`) and submitted again with the same run name
    continues from its last checkpoint on S3; then a scoring job reads and writes S3, as the
    README's nightly cron line submits it."""
    address, env = ray_head
    bucket = s3.bucket("textcnn-jobs")
    pq.write_table(pq.read_table(SAMPLE_TRAIN).slice(0, 3000), tmp_path / "train.parquet")   # short epochs
    s3.upload(str(tmp_path / "train.parquet"), f"{bucket}/data/train.parquet")
    s3.upload(SAMPLE_TEST, f"{bucket}/corpus/part-0.parquet")
    model, epochs = f"{bucket}/models/rt", 4
    args = ["jobs/train.py", "--train", f"{bucket}/data/train.parquet", "--output", model, "--workers", "2",
            "--epochs", str(epochs), "--patience", "0", "--filters", "32", "--embed-dim", "32",
            "--max-length", "32", "--ngram-buckets", "65536", "--storage-path", f"{bucket}/checkpoints",
            "--run-name", "rt", "--no-refit"]
    submit(address, env, "train-1", *args, wait=False)
    deadline = time.time() + 300
    while registered_epoch(f"{bucket}/checkpoints/rt") < 1 and time.time() < deadline:
        time.sleep(0.2)
    subprocess.run([f"{BIN}/ray", "job", "stop", "--address", address, "train-1"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    registered = registered_epoch(f"{bucket}/checkpoints/rt")
    assert not storage.exists(f"{model}/config.json")            # stopped before it finished
    log = submit(address, env, "train-2", *args)
    assert "written to s3://textcnn-jobs/models/rt" in log
    check_resumed(model, registered, epochs)
    saved = storage.read_text(f"{model}/config.json")
    assert s3.key not in saved and s3.secret not in saved      # the filesystem's keys are not saved
    log = submit(address, env, "score-1", "jobs/score.py", "--model", model, "--input", f"{bucket}/corpus",
                 "--output", f"{bucket}/scores", "--actors", "2", "--date", "2026-11-29")
    assert "1,275 scored + 0 dead-lettered of 1,275 rows" in log
    scores = read_run(f"{bucket}/scores/run_date=2026-11-29")
    assert sorted(scores.column("id").to_pylist()) == sorted(pq.read_table(SAMPLE_TEST).column("id").to_pylist())
    for secret in (s3.secret, s3.key):
        assert secret not in log
