"""Job scripts run as real processes, each in a session of its own so that a SIGKILL reaches the
driver and the local Ray it started, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


class Jobs:
    """Starts `python jobs/<script>.py ARGS` drivers with their own local Ray; logs go to tmp."""

    def __init__(self, tmp: Path, env: dict[str, str] | None = None):
        self.tmp, self.extra_env = tmp, env or {}
        self.ray_tmp = tempfile.mkdtemp(prefix="tc-")     # short: Ray's socket paths max 107 bytes
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, script: str, args: list[str]) -> subprocess.Popen:
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(self.extra_env, RAY_TMPDIR=self.ray_tmp)
        log = open(self.tmp / f"{name}.log", "w")
        proc = subprocess.Popen([sys.executable, f"jobs/{script}.py", *args], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
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
