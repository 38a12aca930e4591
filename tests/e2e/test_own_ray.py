"""A new user's machine (issue 31): without RAY_ADDRESS a command starts a private local Ray, even
when an earlier `ray start` left a record of a cluster long gone; an unreachable RAY_ADDRESS fails
in one line; SIGTERM ends a command, and the local Ray it started, within seconds at any stage; and
the README's train example leaves nothing big in the working directory `ray job submit` uploads."""

import os
import shutil
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.test_cluster import Cluster, cluster_env, submit
from tests.procs import Jobs, ray_daemons, session, wait_until
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN, make_corpus

pytestmark = pytest.mark.e2e


@pytest.fixture
def corpus(tmp_path) -> str:
    folder = str(tmp_path / "corpus")
    make_corpus(SAMPLE_TEST, folder, copies=8, files=4)          # 10,200 rows
    return folder


def _score(model: str, corpus: str, out: Path, run_id: str) -> list[str]:
    return ["score", "--model", model, "--input", corpus, "--output", str(out), "--run-id", run_id,
            "--actors", "1"]


def _timed(proc, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    rc = proc.wait(timeout=timeout)
    return rc, time.monotonic() - started


def _score_to_the_end(jobs: Jobs, model: str, corpus: str, timeout: float) -> tuple[int, float, str]:
    """`textcnn score` run to its end: exit status, seconds, log."""
    try:
        rc, seconds = _timed(jobs.start_cli("score", _score(model, corpus, jobs.tmp / "scores", "r")), timeout)
    finally:
        jobs.stop_all()
    return rc, seconds, jobs.log("score")


def test_a_stale_cluster_record_is_not_joined(tmp_path, tiny_model_dir, corpus):
    """A record of a cluster whose head is gone, where `ray start` writes it (under RAY_TMPDIR, here
    the test's own): a bare ray.init() retried it for minutes; the command starts its own Ray."""
    jobs = Jobs(tmp_path)
    record = Path(jobs.ray_tmp, "ray", "ray_current_cluster")
    record.parent.mkdir(parents=True)
    record.write_text(f"127.0.0.1:{free_port()}")
    rc, seconds, log = _score_to_the_end(jobs, tiny_model_dir, corpus, 300)
    print(f"stale record: the score run took {seconds:.1f} s")
    assert rc == 0, log[-3000:]
    assert "started a private local Ray" in log and "Connecting to existing Ray cluster" not in log
    assert "of 10,200 rows" in log


def test_an_unreachable_ray_address_fails_in_one_line(tmp_path, tiny_model_dir, corpus):
    address = f"127.0.0.1:{free_port()}"
    jobs = Jobs(tmp_path, env={"RAY_ADDRESS": address})
    rc, seconds, log = _score_to_the_end(jobs, tiny_model_dir, corpus, 120)
    print(f"dead RAY_ADDRESS: failed after {seconds:.1f} s")
    assert rc == 1 and seconds < 60, log[-3000:]
    assert log.strip().splitlines()[-1].startswith(f"Error: RayConnectError: no Ray cluster answers at "
                                                   f"RAY_ADDRESS={address}")
    assert "Traceback" not in log


def _seconds_until(condition, timeout: float) -> float:
    """Seconds until condition() holds, polled every 0.2 s; timeout when it never did."""
    started = time.monotonic()
    while not condition() and time.monotonic() - started < timeout:
        time.sleep(0.2)
    return min(time.monotonic() - started, timeout)


def _stopped_within(jobs: Jobs, proc, seconds: float) -> tuple[int, float]:
    """SIGTERM the command's process (not its group); its exit status and how long it took."""
    assert proc.poll() is None, "it ended before the signal"
    os.kill(proc.pid, signal.SIGTERM)
    rc, took = _timed(proc, 60)
    assert took < seconds and rc != 0, (rc, took)
    return rc, took


def test_sigterm_ends_a_scoring_run_and_its_local_ray_within_seconds(tmp_path, tiny_model_dir, corpus):
    jobs = Jobs(tmp_path)
    try:
        proc = jobs.start_cli("term", _score(tiny_model_dir, corpus, tmp_path / "s", "c"))
        wait_until(lambda: "scoring with 1 actor" in jobs.log("term"), proc, timeout=240)
        rc, took = _stopped_within(jobs, proc, 15)
        # the raylet and GCS this command started (its session's) stop with it, and then the rest
        assert _seconds_until(lambda: not ray_daemons(proc.pid), 10) < 10, ray_daemons(proc.pid)
        emptied = _seconds_until(lambda: not session(proc.pid), 30)
        print(f"SIGTERM while scoring: exit {rc} after {took:.1f} s; its session empty {emptied:.1f} s later")
        assert emptied < 30, len(session(proc.pid))
    finally:
        jobs.stop_all()
    assert "SIGTERM received" in jobs.log("term")


def test_sigterm_ends_a_command_waiting_on_a_port_that_is_not_a_ray_head(tmp_path, tiny_model_dir, corpus):
    """Ray's connect to a GCS blocks in C for up to 40 s a try, where no Python signal handler runs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        jobs = Jobs(tmp_path, env={"RAY_ADDRESS": f"127.0.0.1:{listener.getsockname()[1]}"})
        try:
            proc = jobs.start_cli("blocked", _score(tiny_model_dir, corpus, tmp_path / "s", "d"))
            wait_until(lambda: "connecting to the Ray cluster at" in jobs.log("blocked"), proc, timeout=120)
            time.sleep(2)                                            # inside the connect
            rc, took = _stopped_within(jobs, proc, 15)
        finally:
            jobs.stop_all()
    print(f"SIGTERM while connecting: exit {rc} after {took:.1f} s")


def _size(folder: Path, leaving_out: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and leaving_out not in f.parents)


def test_the_readme_train_example_leaves_the_working_directory_small(tmp_path):
    """`textcnn train --train data/train.parquet --output models/rt` (1 epoch of the bundled
    sample): its checkpoints went to models/_checkpoints (139 MB), which `ray job submit
    --working-dir .` then refused (413, 100 MiB at most). Now they go to the user's cache, and
    are removed once the model directory is written."""
    work, cache = tmp_path / "work", tmp_path / "cache"
    (work / "data").mkdir(parents=True)
    shutil.copy(SAMPLE_TRAIN, work / "data" / "train.parquet")
    jobs = Jobs(tmp_path, env={"XDG_CACHE_HOME": str(cache)})
    try:
        proc = jobs.start_cli("train", ["train", "--train", "data/train.parquet", "--output", "models/rt",
                                        "--epochs", "1"], cwd=work)
        assert proc.wait(timeout=600) == 0, jobs.log("train")[-3000:]
    finally:
        jobs.stop_all()
    model = work / "models" / "rt"
    besides = _size(work, model)
    print(f"working directory after train: {besides / 1e6:.2f} MB besides the model directory "
          f"({_size(model, tmp_path / 'none') / 1e6:.1f} MB)")
    assert (model / "weights.pt").exists() and besides < 3e6
    assert not list(work.rglob("_checkpoints"))
    assert list((cache / "textcnn" / "checkpoints").iterdir()) == []       # the finished run's, removed
    assert "removed its checkpoints" in jobs.log("train")
    # and `ray job submit --working-dir .` from there takes it (to a head of this test's own)
    cluster = Cluster(tmp_path, cluster_env({}))
    try:
        submit(cluster, "listing", "-c", "import os; print('listed', sorted(os.listdir()))", cwd=work)
        assert "listed ['data', 'models']" in cluster.wait_job("listing", 300)
    finally:
        cluster.stop()
