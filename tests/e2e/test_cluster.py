"""A Ray cluster on one machine, as `ray start` makes one: a head (its own process group), to which
jobs are submitted with `ray job submit`, and worker nodes added and killed.

- Scoring, submitted as the README's nightly cron line submits it and reading and writing S3,
  spreads its actors over two nodes; the worker node is killed mid-run, and the run still completes
  with exact counts.
- Training, its checkpoints on S3, spreads its 2 workers over two nodes (STRICT_SPREAD): stopped
  with `ray job stop` and submitted again, it resumes from its last checkpoint; then the worker
  node is killed: training waits, and resumes again once a node is back.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from benchmarks.bench import untrained_model
from tests.conftest import free_port, wait_for_port
from tests.procs import registered_epoch, stop_group
from textcnn import storage
from textcnn.core import artifacts
from textcnn.demo import SAMPLE_TEST, SAMPLE_TRAIN, make_corpus
from textcnn.scoring.run import PRED_LABEL, PRED_PROB
from textcnn.scoring.runs import Layout, read_run
from textcnn.scoring.stages import LINEAGE

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)
# Notice a dead node within seconds rather than the default half minute.
FAST_HEALTH = {"RAY_health_check_period_ms": "1000", "RAY_health_check_failure_threshold": "3",
               "RAY_health_check_initial_delay_ms": "1000"}


def cluster_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment with extra, without RAY_ADDRESS: the nodes run this virtual environment's
    `python`, and CLI clients need the auth mode."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(FAST_HEALTH, **extra, PATH=f"{BIN}:{env.get('PATH', '')}", RAY_AUTH_MODE="token")
    return env


def _start(args, log, env):
    """A node whose dashboard agent listens on a free port: on the default (52365), held by any
    other Ray on the machine (another node, the local Ray of a command just run, a colleague's),
    its HTTP server cannot start, and `ray job submit` answered "No available agent" for 180 s."""
    agent_port = ["--dashboard-agent-listen-port", str(free_port())]
    return subprocess.Popen([f"{BIN}/ray", "start", "--block", "--disable-usage-stats", *agent_port, *args],
                            env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)


class Cluster:
    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp, self.gcs, self.dashboard, self.workers = tmp, free_port(), free_port(), []
        self.env = env                    # the nodes' own settings (AWS: as an instance role gives them)
        self.url = f"http://127.0.0.1:{self.dashboard}"
        self.address = f"127.0.0.1:{self.gcs}"
        self.log = open(tmp / "cluster.log", "ab")
        self.ray_tmp = tempfile.mkdtemp(prefix="tc-ray-")   # short: Ray's socket paths max 107 bytes
        self.head = _start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.gcs),
                            "--num-cpus", "4", "--dashboard-host", "127.0.0.1",
                            "--dashboard-port", str(self.dashboard),
                            "--temp-dir", self.ray_tmp], self.log, env)
        wait_for_port(self.dashboard, self.head, "ray head's dashboard", timeout=120)

    def add_worker(self):
        proc = _start(["--address", self.address, "--node-ip-address", "127.0.0.1", "--num-cpus", "2"],
                      self.log, self.env)
        self.workers.append(proc)
        self.wait_nodes(2)
        return proc

    def get(self, path: str):
        """GET a dashboard endpoint (State API, Jobs API) with the cluster's token: a request takes
        milliseconds where a Python client process takes seconds."""
        token = (Path.home() / ".ray" / "auth_token").read_text().strip()
        request = urllib.request.Request(f"{self.url}{path}", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    def state(self, kind: str) -> list[dict]:
        return self.get(f"/api/v0/{kind}?limit=1000&detail=1")["data"]["result"]["result"]

    def job_status(self, job_id: str) -> str:
        return self.get(f"/api/jobs/{job_id}")["status"]

    def job_running(self, job_id: str) -> bool:
        return self.job_status(job_id) in ("PENDING", "RUNNING")

    def wait_job(self, job_id: str, timeout: float) -> str:
        """Wait for a submitted job to end; its log, having checked that it succeeded."""
        _wait_for(lambda: not self.job_running(job_id), f"job {job_id} to end", timeout)
        status, log = self.job_status(job_id), self.get(f"/api/jobs/{job_id}/logs")["logs"]
        assert status == "SUCCEEDED", f"job {job_id} {status}:\n{log[-8000:]}"
        return log

    def alive_nodes(self) -> int:
        return sum(n["state"] == "ALIVE" for n in self.state("nodes"))

    def actor_restarts(self, class_part: str) -> list[int]:
        """num_restarts of every actor whose class name contains class_part."""
        return [int(a["num_restarts"]) for a in self.state("actors") if class_part in a["class_name"]]

    def wait_nodes(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive_nodes() == n:
                return
            time.sleep(0.5)
        raise AssertionError(f"cluster did not reach {n} alive nodes")

    def stop(self):
        for proc in self.workers:
            stop_group(proc, signal.SIGTERM)
        stop_group(self.head, signal.SIGTERM)
        self.log.close()
        shutil.rmtree(self.ray_tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, s3):
    """One head (4 CPUs) for every test here, with the S3 endpoint's settings in its environment: a
    head takes ~15 s to start and stop on 2 cores."""
    c = Cluster(tmp_path_factory.mktemp("cluster"), cluster_env(s3.env))
    try:
        yield c
    finally:
        c.stop()


def _wait_for(predicate, what, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _staged_scores(fs, prefix: str) -> list[str]:
    found = fs.get_file_info(pafs.FileSelector(f"{prefix}/_staging", recursive=True, allow_not_found=True))
    return [f.path for f in found if f.type == pafs.FileType.File and os.path.basename(f.path).startswith("score-")]


def _scorer_alive_off_head(cluster) -> bool:
    head = {n["node_id"] for n in cluster.state("nodes") if n.get("is_head_node")}
    return any("Scorer" in a["class_name"] and a["state"] == "ALIVE" and a.get("node_id") not in head
               for a in cluster.state("actors"))


def test_nightly_scoring_job_over_s3_survives_losing_the_worker_node(cluster, s3, tmp_path):
    """The README's nightly cron line: jobs/score.py submitted with `ray job submit`, reading and
    writing S3, its 2 actors spread over two nodes; the worker node dies mid-run, and the run still
    commits every row exactly once: duplicates planted across files are dead-lettered, their first
    occurrences scored."""
    bucket = s3.bucket("textcnn-nightly")
    untrained_model(str(tmp_path / "model"))   # default-sized: scoring costs what a trained model's does
    rows = make_corpus(SAMPLE_TEST, str(tmp_path / "corpus"), copies=40, files=16)       # 51,000 rows
    dups = _plant_duplicates(tmp_path / "corpus")
    s3.upload(str(tmp_path / "model"), f"{bucket}/models/m")
    s3.upload(str(tmp_path / "corpus"), f"{bucket}/corpus")
    worker = cluster.add_worker()
    # Ray Data spreads the 2 actors (1.5 CPUs each) over the nodes; the head (4 CPUs) has room
    # for the one that loses its node, and CPU left for the read and write tasks.
    submit(cluster, "score-1", "jobs/score.py", "--model", f"{bucket}/models/m", "--input", f"{bucket}/corpus",
           "--output", f"{bucket}/scores", "--actors", "2", "--batch-size", "256", "--cpus-per-actor", "1.5",
           "--date", "2026-11-29")
    fs = s3.fs()
    # the node dies once a unit is staged and one actor is scoring there (the pool may start its second
    # actor after the first unit: killing the node before would take a pending actor, not a running one)
    _wait_for(lambda: _staged_scores(fs, "textcnn-nightly/scores") and _scorer_alive_off_head(cluster),
              "a staged score file and a Scorer actor alive on the worker node")
    stop_group(worker)                                                       # the worker node dies
    log = cluster.wait_job("score-1", 900)
    assert f"{rows:,} scored + {dups:,} dead-lettered of {rows + dups:,} rows" in log
    layout = Layout(f"{bucket}/scores", "run_date=2026-11-29")
    scores, dead = read_run(layout), read_run(layout, dead_letter=True)
    ids = scores.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == rows
    assert set(dead.column("reason").to_pylist()) == {"id_duplicate"} and dead.num_rows == dups
    assert set(dead.column("source_file").to_pylist()) == {f"{bucket}/corpus/part-99999.parquet"}
    assert scores.schema.names == ["id", PRED_LABEL, PRED_PROB, "prob_fresh", "prob_rotten", *LINEAGE]
    restarts = cluster.actor_restarts("Scorer")
    assert len(restarts) == 2 and max(restarts) >= 1, restarts   # one actor died with the node
    manifest = storage.read_text(layout.manifest)
    assert len(json.loads(manifest)["input"]["files"]) == len(list((tmp_path / "corpus").iterdir()))
    for secret in (s3.secret, s3.key):
        assert secret not in log and secret not in manifest
    # staging and the lock are gone once committed
    left = fs.get_file_info(pafs.FileSelector("textcnn-nightly/scores", recursive=True))
    assert not [f.path for f in left if f.type == pafs.FileType.File and ("/_staging/" in f.path
                                                                          or "/_locks/" in f.path)]


def _plant_duplicates(corpus: Path) -> int:
    """A last file repeating 600 rows of two earlier files (ids and texts): its rows are the later
    occurrences, so they are dead-lettered and the earlier ones scored."""
    files = sorted(corpus.iterdir())
    repeated = pa.concat_tables([pq.read_table(files[0]).slice(0, 300), pq.read_table(files[-1]).slice(100, 300)])
    pq.write_table(repeated, corpus / "part-99999.parquet")
    return repeated.num_rows


def submit(cluster, job_id, *args, cwd: Path = ROOT) -> None:
    """`ray job submit --no-wait --working-dir .` from cwd (cluster.wait_job follows the job from
    there); a head just started, or a node just added, may not have its job agent yet: that is
    retried for 180 s (60 s once fell short in a run here)."""
    cmd = [f"{BIN}/ray", "job", "submit", "--address", cluster.url, "--submission-id", job_id, "--no-wait",
           "--working-dir", ".", "--", "python", *args]
    deadline = time.monotonic() + 180
    while True:
        proc = subprocess.run(cmd, cwd=cwd, env=cluster.env, capture_output=True, text=True, timeout=120)
        if "No available agent to submit job" not in proc.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _wait_registered(run_dir: str, above: int, job_id: str, cluster: Cluster) -> int:
    """The epoch of the run's latest registered checkpoint, once it is above `above`."""
    _wait_for(lambda: registered_epoch(run_dir) > above or not cluster.job_running(job_id),
              f"a checkpoint after epoch {above}", timeout=600)
    return registered_epoch(run_dir)


def test_a_training_job_over_s3_resumes_after_ray_job_stop_and_after_losing_a_node(cluster, s3, tmp_path):
    """Training over two nodes (STRICT_SPREAD), its checkpoints on S3: stopped with `ray job stop`
    and submitted again with the same run name, it continues from its last checkpoint; then its
    worker node dies, training waits, and once a node is back it resumes again and finishes."""
    bucket = s3.bucket("textcnn-jobs")
    pq.write_table(pq.read_table(SAMPLE_TRAIN).slice(0, 3000), tmp_path / "train.parquet")   # short epochs
    s3.upload(str(tmp_path / "train.parquet"), f"{bucket}/data/train.parquet")
    model, run_dir, epochs = f"{bucket}/models/rt", f"{bucket}/checkpoints/rt", 10
    args = ["jobs/train.py", "--train", f"{bucket}/data/train.parquet", "--output", model, "--workers", "2",
            "--placement", "STRICT_SPREAD", "--epochs", str(epochs), "--patience", "0", "--filters", "32",
            "--embed-dim", "32", "--max-length", "32", "--ngram-buckets", "65536",
            "--storage-path", f"{bucket}/checkpoints", "--run-name", "rt", "--no-refit"]
    worker = cluster.add_worker()
    submit(cluster, "train-1", *args)
    _wait_registered(run_dir, -1, "train-1", cluster)
    subprocess.run([f"{BIN}/ray", "job", "stop", "--address", cluster.url, "train-1"], cwd=ROOT, env=cluster.env,
                   check=True, capture_output=True, timeout=120)
    stopped_at = registered_epoch(run_dir)
    assert cluster.job_status("train-1") == "STOPPED" and not storage.exists(f"{model}/config.json")

    submit(cluster, "train-2", *args)
    node_lost_at = _wait_registered(run_dir, stopped_at, "train-2", cluster)   # a checkpoint of the resumed run
    # the node's training worker may run an epoch or two more before it notices; 10 short epochs
    # leave the run unfinished either way
    stop_group(worker)                                                       # the worker node dies
    time.sleep(8)
    assert cluster.job_status("train-2") == "RUNNING"   # STRICT_SPREAD: waits for a second node
    back = cluster.add_worker()
    log = cluster.wait_job("train-2", 900)
    stop_group(back, signal.SIGTERM)
    assert "written to s3://textcnn-jobs/models/rt" in log
    history = json.loads(storage.read_text(f"{model}/metrics.json"))["history"]
    assert [h["epoch"] for h in history] == list(range(epochs))
    starts = sorted({h["attempt_start_epoch"] for h in history})       # where each attempt began
    assert len(starts) == 3 and starts[0] == 0, starts
    assert stopped_at + 1 <= starts[1] <= node_lost_at < starts[2], (stopped_at, node_lost_at, starts)
    # each epoch ran once, in the attempt that began at or before it and after the one before
    assert [h["attempt_start_epoch"] for h in history] == [max(s for s in starts if s <= e) for e in range(epochs)]
    assert artifacts.verify(model) == []
    assert "removed its checkpoints" in log and not storage.exists(run_dir)     # the model holds the result
    saved = storage.read_text(f"{model}/config.json")
    for secret in (s3.secret, s3.key):              # the filesystem's keys are neither saved nor logged
        assert secret not in saved and secret not in log
