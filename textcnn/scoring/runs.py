"""The on-storage contract of scoring runs: layout, lock, staged units, and the commit.

    <output>/scores/run_date=YYYY-MM-DD/       (or run=ID/) the scores dataset: score files only
        part-<unit>-<row>.parquet              lineage columns on every row
    <output>/dead_letters/run_date=YYYY-MM-DD/ the dead-letter dataset, with its own schema
        part-<unit>-<row>.parquet
    <output>/_runs/run_date=YYYY-MM-DD/_SUCCESS    the manifest (JSON), written last
    <output>/_staging/<run>/               work in progress: plan.json, units/u-N/..., commit.json,
                                           dups/u-N.parquet (the id pass's duplicate rows), dups/_DONE.json
    <output>/_locks/<run>.json             held while a run of that date is live

Each dataset folder holds Parquet files and nothing else, so every reader pointed at it (pandas,
pyarrow, polars, DuckDB, Spark, Ray Data; a folder or a `**/*.parquet` glob) sees one schema and
only committed rows. The commit is a list of idempotent steps recorded in staging before the first
one runs (commit.json), so a commit cut off at any point is finished by the next attempt.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from textcnn import storage
from textcnn.errors import TextcnnError
from textcnn.scoring.records import DEAD_LETTERS, SCORES, IdPassDone, Manifest, UnitOutputs

log = logging.getLogger(__name__)

MANIFEST = "_SUCCESS"
DONE = "_DONE.json"


class LockedError(TextcnnError, RuntimeError):
    """Another live run of the same date holds the lock."""


@dataclass(frozen=True)
class Layout:
    output: str
    run_key: str

    @property
    def run_dir(self) -> str:
        """The run's partition of the scores dataset."""
        return storage.join(self.output, SCORES, self.run_key)

    @property
    def dead_letter_dir(self) -> str:
        return storage.join(self.output, DEAD_LETTERS, self.run_key)

    @property
    def manifest(self) -> str:
        return storage.join(self.output, "_runs", self.run_key, MANIFEST)

    @property
    def staging(self) -> str:
        return storage.join(self.output, "_staging", self.run_key)

    @property
    def lock(self) -> str:
        return storage.join(self.output, "_locks", f"{self.run_key}.json")

    def unit_dir(self, unit: int) -> str:
        return storage.join(self.staging, "units", f"u-{unit:06d}")

    @property
    def dups_dir(self) -> str:
        """The id pass's duplicate input rows, a file per unit that has any (ids.unit_file)."""
        return storage.join(self.staging, "dups")

    def scratch(self, name: str) -> str:
        """A folder of intermediate files of a distributed pass (the id pass, reconcile's check)."""
        return storage.join(self.staging, "_scratch", name)

    def part(self, dataset: str, unit: int, first_row: int) -> str:
        """A committed file's path relative to output, as the manifest lists it."""
        return f"{dataset}/{self.run_key}/part-{unit:06d}-{first_row:012d}.parquet"

    def staged_part(self, dataset: str, unit: int, first_row: int) -> str:
        """Where a unit's file is staged before the commit moves it to part(...)."""
        kind = "score" if dataset == SCORES else "dead"
        return storage.join(self.unit_dir(unit), f"{kind}-{first_row:012d}.parquet")


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

    def start(self, fingerprint: dict) -> dict[int, UnitOutputs]:
        """Committed units ({unit: its _DONE record}) reusable from an interrupted attempt with the
        same model and input; anything else left in staging is removed."""
        plan_uri = storage.join(self.layout.staging, "plan.json")
        previous = self.recorded()
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

    def recorded(self) -> dict | None:
        """The fingerprint staging was started with, if any."""
        uri = storage.join(self.layout.staging, "plan.json")
        try:
            return json.loads(storage.read_text(uri)) if storage.exists(uri) else None
        except ValueError:
            return None

    def _done_record(self, unit: int) -> UnitOutputs | None:
        uri = storage.join(self.layout.unit_dir(unit), DONE)
        try:
            return UnitOutputs.from_json(storage.read_text(uri)) if storage.exists(uri) else None
        except (ValueError, KeyError, TypeError):      # cut off while written, or an older version's
            return None

    def commit_unit(self, unit: int, record: UnitOutputs) -> None:
        storage.write_text(storage.join(self.layout.unit_dir(unit), DONE), record.to_json())

    def dups_record(self) -> IdPassDone | None:
        """What the id pass recorded when it finished; None when it did not finish."""
        uri = storage.join(self.layout.dups_dir, DONE)
        try:
            return IdPassDone.from_json(storage.read_text(uri)) if storage.exists(uri) else None
        except (ValueError, KeyError, TypeError, AttributeError):   # cut off while written
            return None

    def commit_dups(self, record: IdPassDone) -> None:
        storage.write_text(storage.join(self.layout.dups_dir, DONE), record.to_json())

    def clear(self, uri: str) -> None:
        """Remove a folder of this staging (a pass's leftovers from an attempt that was cut off)."""
        _delete_dir(uri)


COMMIT = "commit.json"


@dataclass(frozen=True)
class Commit:
    """What a run publishes: its files ((staged uri, path relative to output)) and its manifest."""
    moves: tuple[tuple[str, str], ...]
    manifest: Manifest

    def to_json(self) -> str:
        return json.dumps({"moves": [list(m) for m in self.moves], "manifest": self.manifest.to_dict()}, indent=1)

    @staticmethod
    def from_json(text: str) -> Commit:
        record = json.loads(text)
        return Commit(tuple((a, b) for a, b in record["moves"]), Manifest.from_dict(record["manifest"]))


def pending_commit(layout: Layout) -> Commit | None:
    """The commit an earlier attempt recorded and did not finish, if any."""
    uri = storage.join(layout.staging, COMMIT)
    if not storage.exists(uri):
        return None
    try:
        return Commit.from_json(storage.read_text(uri))
    except (ValueError, KeyError, TypeError):
        log.warning("%s is unreadable (cut off while written); the run starts over", uri)
        return None


def withdraw_steps(layout: Layout, kept: set[str]) -> list[Callable[[], None]]:
    """The commit's first steps: withdraw the run's manifest, then remove the run's files under
    output that are not in kept (absolute paths on output's filesystem)."""
    fs, _ = storage.resolve(layout.output)
    steps: list[Callable[[], None]] = [lambda: _delete_file(fs, storage.path_of(layout.manifest))]
    for folder in (layout.run_dir, layout.dead_letter_dir):
        steps.append(lambda folder=folder: _delete_others(fs, storage.path_of(folder), kept))
    return steps


def write_manifest(layout: Layout, manifest: Manifest) -> None:
    storage.write_text(layout.manifest, json.dumps(manifest.to_dict(), indent=2) + "\n")


def commit_steps(layout: Layout, commit: Commit) -> list[Callable[[], None]]:
    """The commit as steps, each idempotent, so that after a cut-off the whole list runs again:
    withdraw the old manifest, remove the old run's files that the new one does not replace, move
    each staged file unless an earlier try moved it, write the manifest, clear staging."""
    fs, _ = storage.resolve(layout.output)
    kept = {storage.path_of(storage.join(layout.output, rel)) for _, rel in commit.moves}
    steps = withdraw_steps(layout, kept)
    for staged, rel in commit.moves:
        steps.append(lambda staged=staged, rel=rel: _move_once(fs, storage.path_of(staged),
                                                               storage.path_of(storage.join(layout.output, rel))))
    steps.append(lambda: write_manifest(layout, commit.manifest))
    steps.append(lambda: clear_staging(layout))
    return steps


def publish(layout: Layout, commit: Commit,
            steps: Callable[[Layout, Commit], list[Callable[[], None]]] = commit_steps) -> None:
    """Record the commit in staging, then run its steps (commit_steps, or tables.commit_steps for a
    run into Iceberg tables)."""
    storage.write_text(storage.join(layout.staging, COMMIT), commit.to_json())
    for step in steps(layout, commit):
        step()


def clear_staging(layout: Layout) -> None:
    _delete_dir(layout.staging)


def _delete_file(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def _delete_others(fs: pafs.FileSystem, folder: str, kept: set[str]) -> None:
    for info in fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True)):
        if info.type == pafs.FileType.File and info.path not in kept:
            fs.delete_file(info.path)


def _move_once(fs: pafs.FileSystem, staged: str, final: str) -> None:
    if fs.get_file_info(staged).type == pafs.FileType.File:
        fs.create_dir(final.rsplit("/", 1)[0], recursive=True)
        fs.move(staged, final)
    elif fs.get_file_info(final).type != pafs.FileType.File:
        raise storage.StorageError(f"{final}: neither it nor its staged file {staged} exists; "
                                   "the staging of this run was removed by hand")


def read_manifest(layout: Layout) -> Manifest | None:
    """The run's manifest; None when the run is not committed. A manifest that is not JSON or lacks
    what a manifest holds is a StorageError naming it."""
    if not storage.exists(layout.manifest):
        return None
    try:
        record = json.loads(storage.read_text(layout.manifest))
    except ValueError as e:
        raise storage.StorageError(f"{layout.manifest}: not JSON ({e})") from None
    try:
        return Manifest.from_dict(record)
    except (KeyError, TypeError, AttributeError) as e:
        raise storage.StorageError(f"{layout.manifest}: not a textcnn manifest (no {e})") from None


def _runs(output: str) -> list[str]:
    """The run keys with a folder under <output>/_runs."""
    return sorted(i.base_name for i in _list(storage.join(output, "_runs")) if i.type == pafs.FileType.Directory
                  and i.base_name.startswith(("run_date=", "run=")))


def previous_manifest(layout: Layout) -> Manifest | None:
    """The last successful run before this one: the latest earlier date, or for run ids the most
    recently finished other run. An unreadable manifest is skipped with a warning."""
    others = [r for r in _runs(layout.output) if r != layout.run_key]
    if layout.run_key.startswith("run_date="):
        others = [r for r in others if r.startswith("run_date=") and r < layout.run_key]
    manifests = []
    for run in reversed(others):
        try:
            manifest = read_manifest(Layout(layout.output, run))
        except storage.StorageError as e:
            log.warning("drift: skipping run %s: %s", run, e)
            continue
        if manifest is not None:
            manifests.append(manifest)
            if layout.run_key.startswith("run_date="):
                break
    return max(manifests, key=lambda m: m.finished_at, default=None)


def run_keys(output: str) -> set[str]:
    """Partition names found in output's scores dataset (run_date=... or run=...)."""
    return {i.base_name for i in _list(storage.join(output, SCORES)) if i.type == pafs.FileType.Directory}


def read_run(layout: Layout, dead_letter: bool = False) -> pa.Table:
    """A committed run's scores (or dead letters), read from the files its manifest lists: the way a
    consumer should read a run. StorageError when the run has no _SUCCESS."""
    manifest = read_manifest(layout)
    if manifest is None:
        raise storage.StorageError(f"{layout.manifest}: missing; run {layout.run_key} is not committed")
    files = manifest.output.dead_letter_files if dead_letter else manifest.output.files
    fs, root = storage.resolve(layout.output)
    return pads.dataset([f"{root}/{f.path}" for f in files], filesystem=fs, format="parquet").to_table()
