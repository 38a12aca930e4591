"""Job scripts run as real processes, each in a session of its own so that a SIGKILL reaches the
driver and the local Ray it started, and nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def session(sid: int) -> list[int]:
    """Processes of session sid: a driver started with start_new_session and the Ray it started."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit() and int(stat.rsplit(")", 1)[1].split()[3]) == sid:
            pids.append(int(entry))
    return pids


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def ray_daemons(sid: int) -> list[str]:
    """The raylet and gcs_server processes of session sid, as 'pid name'."""
    found = []
    for pid in session(sid):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        if name in ("raylet", "gcs_server"):
            found.append(f"{pid} {name}")
    return found


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, settle: float = 0.0) -> None:
    """Send sig to the process group proc leads (started with start_new_session: only what the
    caller started), wait up to 5 s for proc and up to settle s more for the rest of its group,
    then SIGKILL what is left."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and group_alive(proc.pid):
        time.sleep(0.5)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class Jobs:
    """Starts `python jobs/<script>.py ARGS` drivers with their own local Ray; logs go to tmp."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None):
        self.tmp, self.extra_env = tmp, env or {}
        self.ray_tmp = tempfile.mkdtemp(prefix="tc-")     # short: Ray's socket paths max 107 bytes
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, script: str, args: list[str]) -> subprocess.Popen:
        return self._popen(name, [sys.executable, f"jobs/{script}.py", *args], ROOT)

    def start_cli(self, name: str, args: list[str], cwd: Path = ROOT) -> subprocess.Popen:
        """`textcnn ARGS` run from cwd (with this tree's textcnn importable)."""
        return self._popen(name, [sys.executable, "-m", "textcnn", *args], cwd)

    def _popen(self, name: str, argv: list[str], cwd: Path) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(self.extra_env, RAY_TMPDIR=self.ray_tmp)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL the driver, then whatever it started that outlived it."""
        _kill_all([proc.pid] + [p for p in session(proc.pid) if p != proc.pid])
        proc.wait()
        deadline = time.time() + 30
        while session(proc.pid) and time.time() < deadline:
            _kill_all(session(proc.pid))
            time.sleep(0.2)

    def stop_all(self) -> None:
        for proc in self.procs:
            self.kill(proc)


def wait_until(condition: Callable[[], object], proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll condition every 0.1 s until it holds, proc exits or timeout s pass (the caller checks which)."""
    deadline = time.time() + timeout
    while not condition() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)


def registered_epoch(run_dir: str, phase: str = "select") -> int:
    """The latest epoch of phase ("select" or "refit") whose checkpoint Ray Train has registered in
    the run's snapshot (-1: none). A checkpoint folder appears before it is registered; only a
    registered one is resumed from."""
    from textcnn import storage
    snapshot = storage.join(run_dir, "checkpoint_manager_snapshot.json")
    try:
        results = json.loads(storage.read_text(snapshot))["checkpoint_results"] if storage.exists(snapshot) else []
    except (storage.StorageError, ValueError):   # being rewritten as we read
        return -1
    return max((r["metrics"]["epoch"] for r in results if r["metrics"].get("phase") == phase), default=-1)


def train_killed_then_resumed(jobs: Jobs, args: list[str], kills: list[tuple[str, int, str]]) -> list[int]:
    """Run jobs/train.py ARGS; for each (run_dir, epoch, phase) of kills, SIGKILL it once that run's
    checkpoint of that epoch of that phase is registered and start it again with the same ARGS; wait
    for the last start to finish. Returns the last epoch of the phase registered at each kill."""
    registered = []
    for attempt, (run_dir, kill_after_epoch, phase) in enumerate(kills):
        proc = jobs.start(f"attempt{attempt}", "train", args)
        wait_until(lambda: registered_epoch(run_dir, phase) >= kill_after_epoch, proc, timeout=240)
        assert proc.poll() is None, f"attempt {attempt} ended before the kill: " + jobs.log(f"attempt{attempt}")[-3000:]
        jobs.kill(proc)                                       # SIGKILL: no cleanup runs
        registered.append(registered_epoch(run_dir, phase))
    last = jobs.start("last", "train", args)
    assert last.wait(timeout=300) == 0, jobs.log("last")[-3000:]
    return registered
