"""Scores as Iceberg tables (`textcnn score --output-table NAMESPACE.TABLE`): each night one snapshot.

The run itself is unchanged: --output keeps its state (_staging, _locks, and the manifests
_runs/<run>/_SUCCESS), so validation, the lock, resume, reconcile and drift work as for a folder. Only
the commit differs (commit_steps): instead of moving the staged files into <output>/scores/<run>/,
it writes them to two tables,

    NAMESPACE.TABLE                 the score rows      (partitioned by run_id: identity)
    NAMESPACE.TABLE_dead_letters    the dead letters    (the same partitioning, with their reasons)

each in ONE snapshot (an Iceberg OVERWRITE) that removes the run's partition and adds the night's
rows, so a reader sees the whole night or none of it, and a rerun of a date replaces that date only.
Each snapshot's summary carries the lineage (textcnn.* properties: run, attempt, model version,
vocabulary hash, row counts, drift). The steps stay idempotent across a kill: a table that holds a
snapshot of this attempt is not written again; the manifest, written last, records both snapshots
and the data files they added.

The catalog is pyiceberg's own configuration (~/.pyiceberg.yaml or PYICEBERG_CATALOG__<NAME>__*
variables) of the catalog named by --catalog; when that name is not configured, an embedded SQL
catalog on SQLite: <output>/_catalog/catalog.db, tables under <output>/_warehouse (a local --output).
The two tables are committed one after the other (Iceberg has no commit across tables), scores first.

`--input-table` reads a table of the same catalog (input_snapshot): the data files of its current
snapshot, or those appended after `--since-snapshot`, planned and scored like a folder's files.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
import uuid
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from textcnn import runtime, storage
from textcnn.config import DEAD_LETTER_SUFFIX
from textcnn.errors import TextcnnError
from textcnn.scoring import drift, runs
from textcnn.scoring.records import DEAD_LETTERS, SCORES, InputTable, Manifest, OutputFile, TableCommit

log = logging.getLogger(__name__)

PARTITION = "run_id"           # the column both datasets carry on every row, the run's date or id
PROPERTY = "textcnn."          # prefix of the snapshot summary properties textcnn writes
COMMIT_TRIES = 5               # a commit that lost a race with another writer of the table is redone


class TableError(TextcnnError, RuntimeError):
    """An Iceberg table or catalog cannot be used (not configured, unreachable, an incompatible schema)."""


def _require_pyiceberg() -> None:
    try:
        import pyiceberg  # noqa: F401
    except ImportError:
        raise TableError("Iceberg tables (--output-table, --input-table) need pyiceberg: "
                         "pip install 'textcnn[iceberg]'") from None


def table_names(output_table: str) -> dict[str, str]:
    """{dataset: table name}: the scores table and, beside it, its dead letters."""
    return {SCORES: output_table, DEAD_LETTERS: output_table + DEAD_LETTER_SUFFIX}


def catalog_properties(name: str, output: str) -> dict[str, str]:
    """pyiceberg's properties of catalog name: its configuration, or the embedded SQLite catalog
    under output when name is not configured (what Ray Data's read_iceberg takes as catalog_kwargs)."""
    _require_pyiceberg()
    from pyiceberg.utils.config import Config
    configured = Config().get_catalog_config(name)         # read afresh: the environment may have changed
    if configured:
        return {"name": name, **{k: str(v) for k, v in configured.items()}}
    if storage.is_remote(output):
        raise TableError(f"catalog '{name}' is not configured, and the embedded SQLite catalog needs a local "
                         f"--output, not {output}; configure it in ~/.pyiceberg.yaml or with "
                         f"PYICEBERG_CATALOG__{name.upper()}__URI and __WAREHOUSE (docs/tables.md)")
    root = storage.path_of(output)
    return {"name": name, "type": "sql", "uri": f"sqlite:///{root}/_catalog/catalog.db",
            "warehouse": f"file://{root}/_warehouse"}


def load(name: str, output: str) -> Any:
    """The pyiceberg Catalog named name (see catalog_properties)."""
    properties = catalog_properties(name, output)
    from pyiceberg.catalog import load_catalog
    if properties.get("uri", "").startswith("sqlite:///"):
        os.makedirs(os.path.dirname(properties["uri"][len("sqlite:///"):]), exist_ok=True)
    try:
        return load_catalog(**properties)
    except Exception as e:          # pyiceberg raises ValueError, OSError, its own errors; name them in one line
        raise TableError(f"catalog '{name}': {type(e).__name__}: {e}") from None


def _table(catalog: Any, name: str) -> Any | None:
    from pyiceberg.exceptions import NoSuchTableError
    try:
        return catalog.load_table(name)
    except NoSuchTableError:
        return None


def _create(catalog: Any, name: str, schema: pa.Schema) -> Any:
    """The table, created partitioned by run_id (by another run at the same moment, or by this call)."""
    from pyiceberg.exceptions import TableAlreadyExistsError
    namespace = name.rsplit(".", 1)[0]
    catalog.create_namespace_if_not_exists(namespace)
    try:
        tx = catalog.create_table_transaction(name, schema=schema)
        with tx.update_spec() as spec:
            spec.add_identity(PARTITION)
        tx.commit_transaction()
        log.info("created Iceberg table %s, partitioned by %s", name, PARTITION)
    except TableAlreadyExistsError:
        pass
    return catalog.load_table(name)


def snapshot_of(table: Any, attempt: str) -> Any | None:
    """The snapshot an attempt committed to table, if any (its textcnn.attempt property)."""
    for snapshot in reversed(table.snapshots()):
        summary = snapshot.summary
        if summary is not None and summary.additional_properties.get(PROPERTY + "attempt") == attempt:
            return snapshot
    return None


def added_files(table: Any, snapshot: Any) -> list[OutputFile]:
    """The data files snapshot added, with their rows."""
    from pyiceberg.manifest import ManifestContent, ManifestEntryStatus
    files = []
    for manifest in snapshot.manifests(table.io):
        if manifest.content != ManifestContent.DATA or manifest.added_snapshot_id != snapshot.snapshot_id:
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
            if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snapshot.snapshot_id:
                files.append(OutputFile(entry.data_file.file_path, entry.data_file.record_count))
    return sorted(files, key=lambda f: f.path)


def _schema(uri: str) -> pa.Schema:
    fs, path = storage.resolve(uri)
    return pq.read_schema(path, filesystem=fs)


def _read(uri: str, fs: Any = None) -> pa.Table:
    fs, path = storage.resolve(uri, fs)
    try:
        return pq.read_table(path, filesystem=fs)
    except OSError as e:
        raise storage.StorageError(f"{uri}: {storage.reason(e)}") from None


def _evolve(table: Any, name: str, staged: list[str]) -> Any:
    """table with its schema widened (by name) to the staged files' columns: a night with
    --explain or other --keep-columns adds columns, and earlier nights read them as null."""
    from pyiceberg.exceptions import ResolveError, ValidationError
    try:
        wanted = pa.unify_schemas([_schema(u) for u in staged], promote_options="permissive")
        with table.update_schema() as update:
            update.union_by_name(wanted)
    except (ValueError, TypeError, pa.ArrowInvalid, ResolveError, ValidationError) as e:
        raise TableError(f"{name}: the night's columns do not fit the table's schema: {e}") from None
    return table.refresh()


def data_files(metadata: Any, io: Any, fs: Any, uri: str, write_uuid: uuid.UUID) -> list[Any]:
    """A task's body: one staged part written as Iceberg data files of the table (with field ids)."""
    from pyiceberg.io.pyarrow import _dataframe_to_data_files  # what Table.append and Ray Data's sink call
    return list(_dataframe_to_data_files(metadata, _read(uri, fs), io, write_uuid))


def _write_files(table: Any, staged: list[str], attempt: str) -> list[Any]:
    """The staged parts as the table's data files, a Ray task per part: the driver holds their
    DataFile records only. A part's file names follow from the attempt and the part, so a task
    retried writes the same files."""
    fs = storage.filesystem(staged[0]) if staged else None
    args = [(table.metadata, table.io, fs, uri, uuid.uuid5(uuid.NAMESPACE_URL, f"{attempt}/{uri}")) for uri in staged]
    return [f for files in runtime.map_tasks(data_files, args) for f in files]


def _partition_files(table: Any, run_id: str) -> list[Any]:
    """The data files of run_id's partition in the table's current snapshot."""
    from pyiceberg.expressions import EqualTo
    files = []
    for task in table.scan(row_filter=EqualTo(PARTITION, run_id)).plan_files():
        spec = table.specs()[task.file.spec_id]
        names = [table.schema().find_column_name(f.source_id) for f in spec.fields]
        if names != [PARTITION]:
            raise TableError(f"{'.'.join(table.name())}: partitioned by {names}, not by {PARTITION} alone; "
                             "its run partition cannot be replaced file by file")
        files.append(task.file)
    return files


def commit_table(catalog: Any, name: str, staged: list[str], run_id: str, properties: dict[str, str]) -> int | None:
    """Replace run_id's partition of table name with the staged files in one snapshot; its id (None
    when there is no table and nothing to add). Idempotent: an attempt's snapshot is written once."""
    from pyiceberg.exceptions import CommitFailedException
    attempt = properties[PROPERTY + "attempt"]
    table = _table(catalog, name)
    if table is not None and (done := snapshot_of(table, attempt)) is not None:
        log.info("%s: snapshot %d of attempt %s is committed already", name, done.snapshot_id, attempt)
        return done.snapshot_id
    if table is None and not staged:
        return None
    if table is None:
        table = _create(catalog, name, _schema(staged[0]))
    if staged:
        table = _evolve(table, name, staged)
    files = _write_files(table, staged, attempt)
    for tries in itertools.count(1):
        old = _partition_files(table, run_id)
        tx = table.transaction()
        with tx.update_snapshot(snapshot_properties=properties).overwrite() as overwrite:
            for f in old:
                overwrite.delete_data_file(f)
            for f in files:
                overwrite.append_data_file(f)
        try:
            tx.commit_transaction()
            break
        except CommitFailedException:       # another run committed to the table meanwhile: redo on its snapshot
            if tries == COMMIT_TRIES:
                raise TableError(f"{name}: the commit lost {tries} races with other writers; rerun to retry") from None
            table = table.refresh()
    snapshot = snapshot_of(table.refresh(), attempt)
    log.info("%s: snapshot %d replaced %s=%s (%d file(s) out, %d in)", name, snapshot.snapshot_id, PARTITION,
             run_id, len(old), len(files))
    return snapshot.snapshot_id


def snapshot_properties(manifest: Manifest, dataset: str) -> dict[str, str]:
    """The lineage a night's snapshot carries in its summary."""
    d = manifest.drift
    return {PROPERTY + k: str(v) for k, v in {
        "run": manifest.run, "run-id": manifest.run_id, "attempt": manifest.attempt, "dataset": dataset,
        "model-version": manifest.model.model_version, "vocab-hash": manifest.model.vocab_hash,
        "model": manifest.model.uri, "input": manifest.input.uri, "rows-in": manifest.input.rows,
        "rows-scored": manifest.output.rows_scored, "rows-dead-lettered": manifest.output.rows_dead_lettered,
        "drift": f"{d.drift:.6f}" if d else "none", "drift-vs": d.previous_run if d else "none",
        "distributions": json.dumps(dataclasses.asdict(manifest.distributions), separators=(",", ":"))}.items()}


def previous_night(catalog_name: str, output: str, output_table: str,
                   run_key: str) -> tuple[str, drift.Distributions] | None:
    """The run drift compares a night with, read from the scores table: walking its snapshots from
    the current one back, the latest earlier date (for a date), or the last other run committed (for a
    run id), with the distributions its snapshot summary carries; None when there is none."""
    from pyiceberg.table.snapshots import ancestors_of
    table = _table(load(catalog_name, output), output_table)
    seen, candidates = set(), []
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata) if table is not None else ():
        props = snapshot.summary.additional_properties if snapshot.summary is not None else {}
        run, record = props.get(PROPERTY + "run"), props.get(PROPERTY + "distributions")
        if run and record and run != run_key and run not in seen:      # the newest snapshot of each run
            seen.add(run)
            if not run_key.startswith("run_date=") or (run.startswith("run_date=") and run < run_key):
                candidates.append((run, drift.Distributions(**json.loads(record))))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0]) if run_key.startswith("run_date=") else candidates[0]


def input_snapshot(catalog_name: str, output: str, name: str, since: int | None) -> tuple[str, list[str], InputTable]:
    """What --input-table scores: the table's location, the data files (paths on its filesystem) and
    the snapshot: every file of the current snapshot, or with since the files appended after that
    snapshot (each snapshot after it must be an append: an overwrite or delete changed rows already
    scored). The files are read as Parquet by column name, so delete files (merge-on-read) are refused."""
    from pyiceberg.table.snapshots import Operation, ancestors_between_ids, is_ancestor_of
    table = _table(load(catalog_name, output), name)
    if table is None:
        raise TableError(f"input table {name}: no such table in catalog '{catalog_name}'")
    current = table.current_snapshot()
    if current is None:
        raise TableError(f"input table {name}: no snapshot yet (an empty table)")
    if since is None:
        tasks = list(table.scan(snapshot_id=current.snapshot_id).plan_files())
        if any(t.delete_files for t in tasks):
            raise TableError(f"input table {name}: snapshot {current.snapshot_id} has delete files (merge-on-read); "
                             "textcnn reads its data files as they are: compact the table first")
        files = sorted(t.file.file_path for t in tasks)
    else:
        if not is_ancestor_of(current.snapshot_id, since, table.metadata):
            raise TableError(f"input table {name}: snapshot {since} is not an ancestor of the current snapshot "
                             f"{current.snapshot_id}")
        chain = list(ancestors_between_ids(since, current.snapshot_id, table.metadata))   # newest first
        for s in chain:
            if s.summary is None or s.summary.operation != Operation.APPEND:
                raise TableError(f"input table {name}: snapshot {s.snapshot_id} after {since} is "
                                 f"{s.summary.operation.value if s.summary else 'unknown'}, not an append; "
                                 "score the whole table instead of --since-snapshot")
        files = [f.path for s in reversed(chain) for f in added_files(table, s)]
        if not files:
            raise TableError(f"input table {name}: no rows appended after snapshot {since} "
                             f"(current {current.snapshot_id})")
    return (table.location(), [storage.path_of(f) for f in files],
            InputTable(catalog_name, name, current.snapshot_id, since))


def _staged(commit: runs.Commit) -> dict[str, list[str]]:
    """{dataset: staged uris}; a move's destination names its dataset first (runs.Layout.part)."""
    return {dataset: [uri for uri, rel in commit.moves if rel.split("/", 1)[0] == dataset]
            for dataset in (SCORES, DEAD_LETTERS)}


def committed_manifest(catalog: Any, config: dict[str, Any], manifest: Manifest) -> Manifest:
    """manifest with the snapshots its attempt committed and the data files they added."""
    tables, files = {}, {SCORES: [], DEAD_LETTERS: []}
    for dataset, name in table_names(config["output_table"]).items():
        table = _table(catalog, name)
        snapshot = snapshot_of(table, manifest.attempt) if table is not None else None
        if snapshot is not None:
            files[dataset] = added_files(table, snapshot)
        tables[dataset] = TableCommit(config["catalog"], name, snapshot.snapshot_id if snapshot else None,
                                      sum(f.rows for f in files[dataset]))
    output = dataclasses.replace(manifest.output, files=files[SCORES], dead_letter_files=files[DEAD_LETTERS])
    return dataclasses.replace(manifest, output=output, tables=tables)


def commit_steps(layout: runs.Layout, commit: runs.Commit) -> list[Callable[[], None]]:
    """The commit of a run into tables, as idempotent steps (runs.commit_steps for a folder): withdraw
    the manifest (and any folder output of the run), one snapshot per table, the manifest with the
    snapshot ids, clear staging."""
    _require_pyiceberg()
    config, manifest = commit.manifest.config, commit.manifest
    catalog: list[Any] = []             # loaded by the first step that needs it

    def cat() -> Any:
        if not catalog:
            catalog.append(load(config["catalog"], layout.output))
        return catalog[0]

    staged = _staged(commit)
    steps = runs.withdraw_steps(layout, kept=set())
    for dataset, name in table_names(config["output_table"]).items():
        steps.append(lambda dataset=dataset, name=name: commit_table(
            cat(), name, staged[dataset], manifest.run_id, snapshot_properties(manifest, dataset)))
    steps.append(lambda: runs.write_manifest(layout, committed_manifest(cat(), config, manifest)))
    steps.append(lambda: runs.clear_staging(layout))
    return steps
