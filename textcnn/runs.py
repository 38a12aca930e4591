"""The on-storage contract of scoring runs: layout, lock, staged units, and the commit.

    <output>/run_date=YYYY-MM-DD/          (or run_id=ID/)
        part-<unit>-<row>.parquet          scores; lineage columns on every row
        dead_letter/part-<unit>-<row>.parquet
        _SUCCESS                           the manifest (JSON), written last
    <output>/_staging/<run>/               work in progress: plan.json, units/u-N/..., u-N/_DONE.json
    <output>/_locks/<run>.json             held while a run of that date is live

A consumer reads a run only when its _SUCCESS exists, and reads the files it lists. Committing
removes the old _SUCCESS first, so while a rerun replaces a date, readers see no run, never a mix.
Names starting with "_" are skipped by pyarrow, Spark and Ray Data when they read <output>.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from textcnn import storage

log = logging.getLogger(__name__)

MANIFEST = "_SUCCESS"
DONE = "_DONE.json"


class LockedError(RuntimeError):
    """Another live run of the same date holds the lock."""


@dataclass(frozen=True)
class Layout:
    output: str
    run_key: str

    @property
    def run_dir(self) -> str:
        return storage.join(self.output, self.run_key)

    @property
    def staging(self) -> str:
        return storage.join(self.output, "_staging", self.run_key)

    @property
    def lock(self) -> str:
        return storage.join(self.output, "_locks", f"{self.run_key}.json")

    def unit_dir(self, unit: int) -> str:
        return storage.join(self.staging, "units", f"u-{unit:06d}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """A lock file with a heartbeat. A lock is stale when its heartbeat is older than ttl seconds, or
    at once when it was taken on this host by a process that no longer exists (a killed driver)."""

    def __init__(self, uri: str, ttl: float) -> None:
        self.uri, self.ttl = uri, ttl
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> str:
        return json.dumps({"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                           "heartbeat": time.time()})

    def _holder(self) -> dict | None:
        try:
            return json.loads(storage.read_text(self.uri))
        except (storage.StorageError, ValueError):
            return None

    def _stale(self, holder: dict) -> bool:
        if holder.get("host") == socket.gethostname() and not _pid_alive(int(holder.get("pid", -1))):
            return True
        return time.time() - float(holder.get("heartbeat", 0)) > self.ttl

    def _create(self) -> bool:
        """Create the lock file unless it exists; exclusive on local disk, read back on S3."""
        if not storage.is_remote(self.uri):
            path = storage.path_of(self.uri)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w") as f:
                f.write(self._record())
            return True
        if storage.exists(self.uri):
            return False
        storage.write_text(self.uri, self._record())
        time.sleep(0.5)     # S3 has no create-if-absent here: the last writer wins, and both check
        holder = self._holder()
        return holder is not None and holder.get("token") == self.token

    def acquire(self) -> None:
        if not self._create():
            holder = self._holder()
            if holder is not None and not self._stale(holder):
                age = time.time() - float(holder.get("heartbeat", 0))
                raise LockedError(f"{self.uri} is held by a live run (pid {holder.get('pid')} on "
                                  f"{holder.get('host')}, heartbeat {age:.0f} s ago); not starting")
            log.warning("taking over the stale lock %s (%s)", self.uri, holder)
            self._delete()
            if not self._create():
                raise LockedError(f"{self.uri} was taken by another run while this one took it over")
        self._thread = threading.Thread(target=self._beat, daemon=True, name="run-lock-heartbeat")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(min(30.0, self.ttl / 3)):
            holder = self._holder()
            if holder is None or holder.get("token") != self.token:
                log.error("lock %s is no longer ours: %s", self.uri, holder)
                return
            storage.write_text(self.uri, self._record())

    def _delete(self) -> None:
        fs, path = storage.resolve(self.uri)
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            self._delete()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _delete_dir(uri: str) -> None:
    fs, path = storage.resolve(uri)
    try:
        fs.delete_dir(path)
    except FileNotFoundError:
        pass


def _list(uri: str, recursive: bool = False) -> list[pafs.FileInfo]:
    fs, path = storage.resolve(uri)
    return fs.get_file_info(pafs.FileSelector(path, recursive=recursive, allow_not_found=True))


class Staging:
    """The run's work in progress: units committed one by one, so a rerun skips what is done."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def start(self, fingerprint: dict) -> dict[int, dict]:
        """Committed units ({unit: its _DONE record}) reusable from an interrupted attempt with the
        same model and input; anything else left in staging is removed."""
        plan_uri = storage.join(self.layout.staging, "plan.json")
        previous = json.loads(storage.read_text(plan_uri)) if storage.exists(plan_uri) else None
        if previous != fingerprint:
            if previous is not None:
                log.info("staging of %s was for another model or input; starting over", self.layout.run_key)
            _delete_dir(self.layout.staging)
            storage.write_text(plan_uri, json.dumps(fingerprint, indent=2))
            return {}
        done = {}
        for info in _list(storage.join(self.layout.staging, "units")):
            unit = int(info.base_name.split("-")[1])
            record = self._done_record(unit)
            if record is None:
                _delete_dir(self.layout.unit_dir(unit))     # partly written: its unit runs again
            else:
                done[unit] = record
        return done

    def _done_record(self, unit: int) -> dict | None:
        uri = storage.join(self.layout.unit_dir(unit), DONE)
        try:
            return json.loads(storage.read_text(uri)) if storage.exists(uri) else None
        except ValueError:
            return None

    def commit_unit(self, unit: int, record: dict) -> None:
        storage.write_text(storage.join(self.layout.unit_dir(unit), DONE), json.dumps(record))

    def clear(self) -> None:
        _delete_dir(self.layout.staging)


def publish(layout: Layout, files: list[tuple[str, str]], manifest: dict) -> None:
    """Replace the run folder with the staged files ([(staged uri, name in the run folder)]), then
    write the manifest last."""
    fs, run_path = storage.resolve(layout.run_dir)
    try:
        fs.delete_file(f"{run_path}/{MANIFEST}")
    except FileNotFoundError:
        pass
    _delete_dir(layout.run_dir)
    fs.create_dir(f"{run_path}/dead_letter", recursive=True)
    for staged, name in files:
        fs.move(storage.path_of(staged), f"{run_path}/{name}")
    storage.write_text(storage.join(layout.run_dir, MANIFEST), json.dumps(manifest, indent=2) + "\n")


def read_manifest(run_dir: str) -> dict | None:
    uri = storage.join(run_dir, MANIFEST)
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def previous_manifest(layout: Layout) -> dict | None:
    """The last successful run before this one: the latest earlier date, or for run ids the most
    recently finished other run."""
    runs = [i.base_name for i in _list(layout.output) if i.type == pafs.FileType.Directory
            and i.base_name.startswith(("run_date=", "run_id=")) and i.base_name != layout.run_key]
    if layout.run_key.startswith("run_date="):
        earlier = sorted(r for r in runs if r.startswith("run_date=") and r < layout.run_key)
        for run in reversed(earlier):
            manifest = read_manifest(storage.join(layout.output, run))
            if manifest is not None:
                return manifest
        return None
    manifests = [m for m in (read_manifest(storage.join(layout.output, r)) for r in runs) if m]
    return max(manifests, key=lambda m: m["finished_at"], default=None)


def read_run(run_dir: str, dead_letter: bool = False) -> pa.Table:
    """A committed run's scores (or dead letters), read from the files its manifest lists: the way a
    consumer should read a run. StorageError when the run has no _SUCCESS."""
    manifest = read_manifest(run_dir)
    if manifest is None:
        raise storage.StorageError(f"{run_dir}: no {MANIFEST}; the run is not committed")
    files = manifest["output"]["dead_letter_files" if dead_letter else "files"]
    fs, root = storage.resolve(run_dir)
    return pads.dataset([f"{root}/{f['path']}" for f in files], filesystem=fs, format="parquet").to_table()
