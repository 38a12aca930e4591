"""A scoring run, safe to schedule unattended: validate, lock, resume, score, reconcile, commit.

1. Validate before any actor starts: the model directory and every input footer (plan.py).
2. Lock the run's date (runs.RunLock): a second live run of the same date is refused.
3. Resume: units committed by an interrupted attempt with the same model and input are kept.
4. Find the duplicate ids with Ray tasks (ids.py), into the run's staging, a file per unit; an
   interrupted attempt's finished pass is reused.
5. Score the other units on Ray Data (stages.py); the driver commits each unit once all of its
   rows are written, scored or dead-lettered.
6. Reconcile (each unit's rows read == scored + dead-lettered; no id scored twice, counted by Ray
   tasks), check drift against the previous run, then replace the run folder and write _SUCCESS
   last (runs.publish); with --output-table, one Iceberg snapshot per table instead of the folder
   (tables.py). The driver holds O(files + units) throughout, never a row's id.

Ray Data's own checkpointing (ray.data.checkpoint, beta in 2.60) filters rows by an input id column
that must be unique and non-null, the very property bad input breaks: on resume, the second row of a
duplicated id would be filtered out as done instead of being dead-lettered. So units are committed
here, keyed by (file, row), which is unique by construction.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import ray.data
from ray.data import ActorPoolStrategy

from textcnn import runtime, storage
from textcnn.config import ConfigError, ScoreConfig, to_dict
from textcnn.core import artifacts
from textcnn.core.model import TextCNN
from textcnn.core.rows import DataError, RowLimits
from textcnn.errors import TextcnnError
from textcnn.scoring import drift, ids, runs, tables
from textcnn.scoring.plan import Mapper, Plan, plan_input
from textcnn.scoring.records import (
    DEAD_LETTERS,
    SCORES,
    IdPassDone,
    InputFile,
    InputSummary,
    InputTable,
    Manifest,
    ModelRef,
    OutputFile,
    OutputSummary,
    ResumeSummary,
    SkippedFile,
    StagedPart,
    TableCommit,
    UnitOutputs,
)
from textcnn.scoring.scorer import Scorer
from textcnn.scoring.stages import (
    OUTPUT_COLUMNS,
    PRED_LABEL,
    PRED_PROB,
    PROB_PREFIX,
    Columns,
    Duplicates,
    read_unit,
    write_parts,
)

__all__ = ["PRED_LABEL", "PRED_PROB", "PROB_PREFIX", "Scorer", "RunSummary", "score", "ReconcileError",
           "DriftError"]

log = logging.getLogger(__name__)

READ_TASK_MEMORY = 512 * 2**20   # bytes reserved per read + tokenize task (one unit, in 8k-row batches)


class ReconcileError(TextcnnError, RuntimeError):
    """Rows read, scored and dead-lettered do not add up, or an id is scored twice: nothing is committed."""


class DriftError(TextcnnError, RuntimeError):
    """The run's score distributions moved further from the previous run's than --max-drift allows."""


@dataclass
class RunSummary:
    layout: runs.Layout
    manifest: Manifest

    @property
    def run_dir(self) -> str:
        """The run's partition of the scores dataset."""
        return self.layout.run_dir

    @property
    def rows_in(self) -> int:
        return self.manifest.input.rows

    @property
    def rows_scored(self) -> int:
        return self.manifest.output.rows_scored

    @property
    def rows_dead(self) -> int:
        return self.manifest.output.rows_dead_lettered

    @property
    def seconds(self) -> float:
        return self.manifest.wall_seconds

    @property
    def rows_per_second(self) -> float:
        return self.manifest.rows_per_second

    def line(self) -> str:
        d = self.manifest.drift
        shift = f"drift {d.drift:.3f} vs {d.previous_run}" if d else "no previous run to compare"
        if self.manifest.tables:
            s, dl = (self.manifest.tables[k] for k in (SCORES, DEAD_LETTERS))
            where = f"table {_snapshot(s)} (dead letters: {_snapshot(dl)})"
        else:
            where = f"{self.run_dir} (dead letters: {self.layout.dead_letter_dir})"
        return (f"{self.manifest.run}: {self.rows_scored:,} scored + {self.rows_dead:,} dead-lettered "
                f"of {self.rows_in:,} rows in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s); "
                f"{shift}; -> {where}")


def _snapshot(commit: TableCommit) -> str:
    if commit.snapshot_id is None:
        return f"{commit.table}: no rows, no table yet"
    return f"{commit.table} snapshot {commit.snapshot_id}"


def _check_output(config: ScoreConfig) -> None:
    """Refuse an output that would mix with the input, or with runs of the other naming."""
    if not config.input_table and storage.overlaps(config.input, config.output):
        raise ConfigError(f"output: {config.output} and the input {config.input} are the same place or one holds "
                          "the other; the score files would become input of the next night")
    if config.id_column in OUTPUT_COLUMNS or config.id_column.startswith(PROB_PREFIX):
        raise ConfigError(f"id_column: '{config.id_column}' is the name of a column textcnn writes "
                          f"({', '.join(OUTPUT_COLUMNS)}, {PROB_PREFIX}<label>); rename it in the input")
    for name in config.keep_columns:
        if name in OUTPUT_COLUMNS or name.startswith(PROB_PREFIX) or name in (config.id_column, config.text_column):
            raise ConfigError(f"keep_columns: '{name}' is the name of a column the score files hold already "
                              f"(the id '{config.id_column}', {', '.join(OUTPUT_COLUMNS)}, {PROB_PREFIX}<label>) "
                              f"or the text column '{config.text_column}'; it cannot be kept")
    kind = config.run_key.split("=")[0]
    other = sorted(k for k in runs.run_keys(config.output) if k.split("=")[0] != kind)
    if other:
        raise ConfigError(f"output: {config.output} holds runs named {other[0]}; one output holds runs by date "
                          "or by --run-id, not both (its readers need one partition key)")


def validate(config: ScoreConfig, paths: list[str] | None = None) -> tuple[artifacts.LoadedModel, Plan]:
    """The model and the input plan (footers only: the ids are read by the id pass, _find_duplicates);
    one DataError naming every problem found. paths: the input's files (an Iceberg snapshot's), when
    not every file under config.input."""
    _check_output(config)
    problems, loaded, plan = [], None, None
    try:
        loaded = artifacts.load(config.model)        # checks every file and the weights' hash
    except artifacts.ModelDirError as e:
        problems.append(str(e))
    try:
        plan = plan_input(config.input, None if config.no_id else config.id_column, config.text_column,
                          config.unit_rows, config.skip_bad_files, config.keep_columns, runtime.map_tasks, paths)
    except DataError as e:
        problems.append(str(e))
    if len(problems) == 1:
        raise DataError(f"cannot start scoring: {problems[0]}")
    if problems:
        raise DataError("cannot start scoring:\n" + "\n".join(problems))
    for wanted, name in ((config.explain, "explain"), (config.precision == "int8", "precision int8")):
        if wanted and not isinstance(loaded.model, TextCNN):
            raise ConfigError(f"{name}: needs the PyTorch model directory; {config.model} is a "
                              f"{loaded.config.get('format')} export")
    return loaded, plan


def _id_pass(config: ScoreConfig, plan: Plan, layout: runs.Layout) -> dict[str, str]:
    """The id pass over the plan's files into the run's staging (ids.py), by Ray tasks; the files
    whose ids do not read ({uri: reason}). An earlier attempt's leftovers are cleared first."""
    staging, scratch = runs.Staging(layout), layout.scratch("ids")
    for folder in (scratch, layout.dups_dir):
        staging.clear(folder)
    bad = ids.duplicate_pass(plan, config.id_column, storage.filesystem(config.input),
                             storage.filesystem(config.output), scratch, layout.dups_dir, runtime.map_tasks)
    staging.clear(scratch)
    return bad


def _refuse_unreadable_ids(bad: dict[str, str]) -> None:
    if bad:
        named = [f"{uri}: {reason}" for uri, reason in sorted(bad.items())]
        raise DataError(f"cannot start scoring: {named[0]}" if len(named) == 1 else
                        "cannot start scoring:\n" + "\n".join(named))


def _find_duplicates(config: ScoreConfig, plan: Plan, staging: runs.Staging, reused: dict[int, UnitOutputs],
                     lineage: dict[str, str]) -> tuple[Plan, dict[int, UnitOutputs], float]:
    """The plan (less the files whose ids do not read, with --skip-bad-files), the units reused and
    the id pass's seconds. The pass is skipped where nothing needs it: ids made from file and row
    (--no-id) are unique by construction; every unit reused; a finished pass in staging."""
    recorded = staging.dups_record()
    if config.no_id or len(reused) == len(plan.units) or (recorded and recorded.input == plan.fingerprint()):
        return plan, reused, 0.0
    runtime.ensure_ray()        # started for the scoring anyway: not the pass's time
    started = time.time()
    bad = _id_pass(config, plan, staging.layout)
    if bad and not config.skip_bad_files:
        _refuse_unreadable_ids(bad)
    if bad:      # another plan: staging starts over for it, and the pass runs again over the rest
        plan = plan.without(bad)
        reused = staging.start(_fingerprint(config, plan, lineage))
        _refuse_unreadable_ids(_id_pass(config, plan, staging.layout))
    staging.commit_dups(IdPassDone(plan.fingerprint(), bad))
    return plan, reused, time.time() - started


def _staged_skips(plan: Plan, staging: runs.Staging) -> Plan:
    """With --skip-bad-files: the plan less the files an interrupted attempt's id pass left out for
    their ids, when that is the plan it ran (so that its staging is resumed, not started over)."""
    recorded = staging.dups_record()
    if recorded is None:
        return plan
    unreadable = {u: r for u, r in recorded.unreadable.items() if u in {f.uri for f in plan.files}}
    candidate = plan.without(unreadable) if unreadable else plan
    return candidate if candidate.fingerprint() == recorded.input else plan


def _limits(config: ScoreConfig) -> RowLimits:
    return RowLimits(config.max_text_chars, config.max_id_chars, config.allow_unknown_only)


def _pipeline(config: ScoreConfig, loaded: artifacts.LoadedModel, plan: Plan, pending: list,
              layout: runs.Layout, lineage: dict[str, str]) -> ray.data.Dataset:
    items = [{"unit": u.index,
              "pieces": [{"file": p.file, "uri": plan.files[p.file].uri, "name": plan.files[p.file].name,
                          "row_groups": list(p.row_groups),
                          "group_rows": [plan.files[p.file].row_groups[g] for g in p.row_groups],
                          "first_row": p.first_row, "rows": p.rows} for p in u.pieces]}
             for u in pending]
    fs = storage.filesystem(config.input)
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    # The memory reservation also keeps Ray Data from fusing this stage into the actors (their remote
    # args differ), so tokenizing runs in its own task pool beside the model, not inside it.
    ds = ds.map_batches(read_unit, batch_size=1, batch_format="pyarrow", num_cpus=0.5, memory=READ_TASK_MEMORY,
                        fn_kwargs=dict(
        fs=fs, columns=Columns(None if config.no_id else config.id_column, config.text_column, plan.keep),
        vocab=loaded.tokenizer.to_dict(), vocab_hash=loaded.vocab_hash, limits=_limits(config),
        duplicates=Duplicates(None, None) if config.no_id else Duplicates(storage.filesystem(config.output),
                                                                              layout.dups_dir)))
    ds = ds.map_batches(Scorer, compute=ActorPoolStrategy(size=config.actors), num_cpus=config.cpus_per_actor,
                        num_gpus=1 if config.use_gpu else 0, batch_size=config.batch_size,
                        batch_format="pyarrow", fn_constructor_kwargs=dict(
                            model_uri=config.model, use_gpu=config.use_gpu,
                            threads=max(1, int(config.cpus_per_actor)),
                            filesystem=storage.filesystem(config.model), explain=config.explain,
                            precision=config.precision))
    return ds.map_batches(write_parts, batch_size=max(config.batch_size, min(config.unit_rows, 16384)),
                          batch_format="pyarrow", num_cpus=0.25, fn_kwargs=dict(
                              fs=storage.filesystem(config.output),
                              layout=layout, id_column=config.id_column, lineage=lineage))


def _with_resources(config: ScoreConfig) -> ScoreConfig:
    """config with its actor count and batch size derived from the cluster where left at 0."""
    runtime.ensure_ray()
    return dataclasses.replace(config, actors=config.actors or runtime.default_actors(config.use_gpu),
                               batch_size=config.batch_size or runtime.default_batch_size(config.use_gpu))


def _score_pending(config: ScoreConfig, loaded: artifacts.LoadedModel, plan: Plan, pending: list,
                   staging: runs.Staging, lineage: dict[str, str]) -> dict[int, UnitOutputs]:
    """Run the pipeline over the pending units, committing each unit as soon as all its rows are in."""
    runtime.require(config.actors * config.cpus_per_actor, config.actors if config.use_gpu else 0,
                    f"scoring with {config.actors} actor(s)")
    log.info("scoring with %d actor(s) of %g CPU%s, %d rows per call", config.actors, config.cpus_per_actor,
             " and 1 GPU" if config.use_gpu else "", config.batch_size)
    expected = {u.index: u.rows for u in pending}
    parts: dict[int, list[UnitOutputs]] = {u: [] for u in expected}
    done: dict[int, UnitOutputs] = {}
    ds = _pipeline(config, loaded, plan, pending, staging.layout, lineage)
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for unit, record in zip(batch["unit"].to_pylist(), batch["record"].to_pylist()):
            parts[unit].append(UnitOutputs.from_json(record))
            seen = sum(p.rows for p in parts[unit])
            if seen > expected[unit]:
                raise ReconcileError(f"unit {unit} produced {seen} rows of its {expected[unit]}")
            if seen == expected[unit]:
                done[unit] = UnitOutputs.merge(parts.pop(unit))
                staging.commit_unit(unit, done[unit])
    if log.isEnabledFor(logging.DEBUG):     # formatting every operator's block stats only when they are shown
        log.debug("Ray Data stats:\n%s", ds.stats())
    missing = sorted(set(expected) - set(done))
    if missing:
        raise ReconcileError(f"{len(missing)} unit(s) did not complete, e.g. {missing[:5]}")
    return done


def _reconcile(plan: Plan, done: dict[int, UnitOutputs], config: ScoreConfig, layout: runs.Layout,
               run: Mapper = runtime.map_tasks) -> None:
    """Every unit's rows read == scored + dead-lettered, from its commit record; then no id scored
    twice, counted by Ray tasks over the score files (ids.scored_twice): no id comes to the driver."""
    short = [u.index for u in plan.units if u.index not in done
             or done[u.index].rows != u.rows or sum(p.rows for p in done[u.index].parts) != u.rows]
    scored = sum(r.rows_in(SCORES) for r in done.values())
    dead = sum(r.rows_in(DEAD_LETTERS) for r in done.values())
    if short or scored + dead != plan.rows or len(done) != len(plan.units):
        raise ReconcileError(f"rows scored ({scored}) + dead-lettered ({dead}) != rows read ({plan.rows}) "
                             f"over {len(done)} of {len(plan.units)} units ({len(short)} unit(s) short, e.g. "
                             f"{short[:5]}); nothing committed")
    files = [(p.uri, p.rows) for u in sorted(done) for p in done[u].parts if p.dataset == SCORES]
    if files:
        scratch = layout.scratch("check")
        runs.Staging(layout).clear(scratch)
        extra, nulls = ids.scored_twice(storage.filesystem(config.output), files, config.id_column, scratch, run)
        runs.Staging(layout).clear(scratch)
        if extra or nulls:
            raise ReconcileError(f"{extra} id(s) scored more than once, {nulls} null; nothing committed")


def _refuse_unreadable(done: dict[int, UnitOutputs], config: ScoreConfig) -> None:
    """Without --skip-bad-files, row groups that could not be read stop the commit (their rows wait in
    staging as dead letters, so a rerun with the flag only commits)."""
    unreadable = sorted({(u.uri, u.error) for r in done.values() for u in r.unreadable})
    if unreadable and not config.skip_bad_files:
        more = f" (and {len(unreadable) - 1} more row group(s))" if len(unreadable) > 1 else ""
        uri, error = unreadable[0]
        raise DataError(f"{uri}: {error}{more}; not committed. Rerun with --skip-bad-files to commit its rows as "
                        "dead letters (row_group_unreadable); the rows scored so far are kept")


def _outputs(done: dict[int, UnitOutputs], layout: runs.Layout) -> list[tuple[StagedPart, str]]:
    """Every staged part with its path relative to output, in unit then row order."""
    return [(p, layout.part(p.dataset, unit, p.first_row))
            for unit in sorted(done) for p in sorted(done[unit].parts, key=lambda p: p.uri)]


def _manifest(config: ScoreConfig, loaded: artifacts.LoadedModel, plan: Plan, done: dict[int, UnitOutputs],
              reused: dict[int, UnitOutputs], started: float, attempt: str, outputs: list[tuple[StagedPart, str]],
              timings: dict[str, float], source: InputTable | None = None) -> Manifest:
    total, seconds = UnitOutputs.merge(list(done.values())), time.time() - started
    files = {d: [OutputFile(path, p.rows) for p, path in outputs if p.dataset == d] for d in (SCORES, DEAD_LETTERS)}
    scored = sum(f.rows for f in files[SCORES])
    return Manifest(
        run=config.run_key, run_id=config.run_date or config.run_id, attempt=attempt,
        started_at=_iso(started), finished_at=_iso(time.time()), wall_seconds=round(seconds, 3),
        rows_per_second=round(plan.rows / seconds, 1) if seconds else 0.0,
        model=ModelRef(config.model, loaded.version, loaded.vocab_hash), config=to_dict(config),
        input=InputSummary(config.input, plan.rows, [SkippedFile(**s) for s in plan.skipped], total.unreadable,
                           [InputFile(f.uri, f.rows) for f in plan.files], source),
        output=OutputSummary(scored, plan.rows - scored, total.reasons, files[SCORES], files[DEAD_LETTERS]),
        resume=ResumeSummary(len(plan.units), len(reused), sum(r.rows for r in reused.values())),
        distributions=drift.Distributions(total.labels, total.top_prob_histogram),
        timings={k: round(v, 3) for k, v in timings.items()})


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).isoformat(timespec="seconds")


def _check_drift(manifest: Manifest, layout: runs.Layout, config: ScoreConfig) -> drift.Drift | None:
    """Drift against the previous run: its manifest under output, or with --output-table the
    previous night in the table (its snapshot summary)."""
    if config.output_table:
        previous = tables.previous_night(config.catalog, config.output, config.output_table, layout.run_key)
    else:
        found = runs.previous_manifest(layout)
        previous = (found.run, found.distributions) if found is not None else None
    if previous is None:
        log.info("drift: no earlier successful run in %s to compare with", config.output_table or layout.output)
        return None
    run, distributions = previous
    result = drift.compare(manifest.distributions, distributions, run)
    log.info("drift vs %s: PSI of top-class probability %.4f, of predicted labels %.4f",
             run, result.psi_top_prob, result.psi_labels)
    if config.max_drift is not None and result.drift > config.max_drift:
        raise DriftError(f"drift {result.drift:.4f} vs {run} is over --max-drift {config.max_drift}; "
                         f"not committed (the scored units stay staged, so a rerun only recommits)")
    return result


def _fingerprint(config: ScoreConfig, plan: Plan, lineage: dict[str, str]) -> dict[str, Any]:
    """What a resumed attempt must share with the one it resumes: input, model and what shapes the rows."""
    # as JSON reads it back from staging (tuples as lists), or a tuple field would never match
    fingerprint = {"input": plan.fingerprint(), **lineage, "config": json.loads(json.dumps(to_dict(config)))}
    for volatile in ("actors", "batch_size", "cpus_per_actor", "use_gpu", "max_drift", "lock_ttl", "skip_bad_files"):
        fingerprint["config"].pop(volatile)
    return fingerprint


def _commit_steps(commit: runs.Commit) -> Any:
    """How a commit is published: into Iceberg tables (tables.commit_steps) or the output folder."""
    return tables.commit_steps if commit.manifest.config.get("output_table") else runs.commit_steps


def _finish_cut_off_commit(layout: runs.Layout, fingerprint: dict[str, Any]) -> Manifest | None:
    """Finish a commit an earlier attempt began and did not end (killed between its steps). Its
    manifest when that attempt ran this same run, which is then done; else None."""
    commit = runs.pending_commit(layout)
    if commit is None:
        return None
    same = runs.Staging(layout).recorded() == fingerprint
    log.warning("%s: finishing the commit that an earlier attempt (%s) began", layout.run_key,
                commit.manifest.attempt)
    for step in _commit_steps(commit)(layout, commit):
        step()
    return runs.read_manifest(layout) if same else None


def score(config: ScoreConfig) -> RunSummary:
    """Score config.input (or config.input_table) into <output>/scores/<run>/ (or config.output_table)
    exactly once; see the module docstring."""
    started, attempt = time.time(), uuid.uuid4().hex[:12]
    if config.output_table or config.input_table:
        tables.catalog_properties(config.catalog, config.output)    # pyiceberg and the catalog, before any work
    paths, source = None, None
    if config.input_table:      # the snapshot's files; config.input becomes the table's location
        location, paths, source = tables.input_snapshot(config.catalog, config.output, config.input_table,
                                                        config.since_snapshot)
        config = dataclasses.replace(config, input=location)
    loaded, plan = validate(config, paths)
    layout = runs.Layout(config.output, config.run_key)
    lineage = {"model_version": loaded.version, "vocab_hash": loaded.vocab_hash,
               "run_id": config.run_date or config.run_id}
    with runs.RunLock(layout.lock, config.lock_ttl):
        staging = runs.Staging(layout)
        plan = _staged_skips(plan, staging) if config.skip_bad_files else plan
        fingerprint = _fingerprint(config, plan, lineage)
        finished = _finish_cut_off_commit(layout, fingerprint)
        if finished is not None:
            return RunSummary(layout, finished)
        reused = staging.start(fingerprint)
        plan, reused, id_seconds = _find_duplicates(config, plan, staging, reused, lineage)
        pending = [u for u in plan.units if u.index not in reused]
        log.info("%s: %d units of %d rows in %d file(s); %d committed by an earlier attempt, %d to score",
                 config.run_key, len(plan.units), plan.rows, len(plan.files), len(reused), len(pending))
        if pending:
            config = _with_resources(config)      # the manifest records what ran
        fresh = _score_pending(config, loaded, plan, pending, staging, lineage) if pending else {}
        done = {**reused, **fresh}
        reconcile_started = time.time()
        _reconcile(plan, done, config, layout)
        timings = {"id_pass_seconds": id_seconds, "reconcile_seconds": time.time() - reconcile_started}
        _refuse_unreadable(done, config)
        outputs = _outputs(done, layout)
        manifest = _manifest(config, loaded, plan, done, reused, started, attempt, outputs, timings, source)
        manifest.drift = _check_drift(manifest, layout, config)
        commit = runs.Commit(tuple((p.uri, path) for p, path in outputs), manifest)
        runs.publish(layout, commit, _commit_steps(commit))
        if config.output_table:         # the manifest as written: with the snapshots and their files
            manifest = runs.read_manifest(layout)
    return RunSummary(layout, manifest)
