"""The typed records of a scoring run: what a unit staged (UnitOutputs, written by the write stage,
kept as the unit's _DONE.json, merged for the manifest) and the run's manifest (Manifest, the
`_SUCCESS` file: the public contract a consumer reads). Each is JSON on storage and a dataclass in
code; `to_dict`/`from_dict` are the one place that maps between the two."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from textcnn.scoring import drift

SCORES, DEAD_LETTERS = "scores", "dead_letters"     # the two datasets of an output folder


@dataclass(frozen=True)
class StagedPart:
    """One staged file of a unit: its dataset, where it is staged, its first row in the unit (which
    names the published file) and its rows."""
    dataset: str
    uri: str
    first_row: int
    rows: int


@dataclass(frozen=True)
class UnreadableRowGroup:
    """A row group whose pages did not decode: its rows are dead letters (row_group_unreadable)."""
    uri: str
    error: str
    rows: int


@dataclass
class UnitOutputs:
    """What a unit (or one block of it) staged: its parts and the counts the manifest sums."""
    rows: int = 0
    parts: list[StagedPart] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    top_prob_histogram: list[int] = field(default_factory=lambda: [0] * drift.HIST_BINS)
    unreadable: list[UnreadableRowGroup] = field(default_factory=list)

    def rows_in(self, dataset: str) -> int:
        return sum(p.rows for p in self.parts if p.dataset == dataset)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> UnitOutputs:
        record = json.loads(text)
        return UnitOutputs(record["rows"], [StagedPart(**p) for p in record["parts"]], record["labels"],
                           record["reasons"], record["top_prob_histogram"],
                           [UnreadableRowGroup(**u) for u in record["unreadable"]])

    @staticmethod
    def merge(records: list[UnitOutputs]) -> UnitOutputs:
        labels, reasons = Counter(), Counter()
        hist = np.zeros(drift.HIST_BINS, dtype=np.int64)
        for r in records:
            labels.update(r.labels)
            reasons.update(r.reasons)
            hist += np.asarray(r.top_prob_histogram, dtype=np.int64)
        return UnitOutputs(sum(r.rows for r in records), [p for r in records for p in r.parts], dict(labels),
                           dict(reasons), hist.tolist(), [u for r in records for u in r.unreadable])


@dataclass(frozen=True)
class IdPassDone:
    """What the id pass records (staging's dups/_DONE.json) when it finishes: the fingerprint of the
    plan it ran over, and the files it left out because their ids did not read ({uri: reason})."""
    input: str
    unreadable: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @staticmethod
    def from_json(text: str) -> IdPassDone:
        record = json.loads(text)
        return IdPassDone(str(record["input"]), {str(u): str(r) for u, r in record.get("unreadable", {}).items()})


@dataclass(frozen=True)
class ModelRef:
    uri: str
    model_version: str
    vocab_hash: str


@dataclass(frozen=True)
class InputFile:
    uri: str
    rows: int


@dataclass(frozen=True)
class SkippedFile:
    uri: str
    reason: str


@dataclass(frozen=True)
class OutputFile:
    path: str        # relative to the output folder; with --output-table, the Iceberg data file's URI
    rows: int


@dataclass(frozen=True)
class TableCommit:
    """A dataset committed to an Iceberg table (--output-table): the snapshot that replaced the run's
    partition (None when the table had nothing to replace and the run nothing to add)."""
    catalog: str
    table: str
    snapshot_id: int | None
    rows: int


@dataclass(frozen=True)
class InputTable:
    """The Iceberg snapshot a run scored (--input-table): all of it, or the rows appended after
    since_snapshot_id (--since-snapshot)."""
    catalog: str
    table: str
    snapshot_id: int
    since_snapshot_id: int | None


@dataclass(frozen=True)
class InputSummary:
    uri: str
    rows: int
    skipped_files: list[SkippedFile]
    unreadable_row_groups: list[UnreadableRowGroup]      # their rows are dead letters
    files: list[InputFile]
    table: InputTable | None = None                      # --input-table: the snapshot scored


@dataclass(frozen=True)
class OutputSummary:
    rows_scored: int
    rows_dead_lettered: int
    dead_letter_reasons: dict[str, int]
    files: list[OutputFile]
    dead_letter_files: list[OutputFile]


@dataclass(frozen=True)
class ResumeSummary:
    units: int
    units_reused: int
    rows_reused: int


@dataclass
class Manifest:
    """A committed run (`_runs/<run>/_SUCCESS`): what ran, on what, and every file it published."""
    run: str
    run_id: str
    attempt: str
    started_at: str
    finished_at: str
    wall_seconds: float
    rows_per_second: float
    model: ModelRef
    config: dict[str, Any]             # the ScoreConfig as run (config.to_dict)
    input: InputSummary
    output: OutputSummary
    resume: ResumeSummary
    distributions: drift.Distributions
    timings: dict[str, float] = field(default_factory=dict)     # seconds of the run's passes
    drift: drift.Drift | None = None
    tables: dict[str, TableCommit] = field(default_factory=dict)   # {dataset: its snapshot}, --output-table

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Manifest:
        """The manifest of d (as read from `_SUCCESS`); KeyError or TypeError when d is not one."""
        i, o = d["input"], d["output"]
        return Manifest(
            d["run"], d["run_id"], d["attempt"], d["started_at"], d["finished_at"], d["wall_seconds"],
            d["rows_per_second"], ModelRef(**d["model"]), d["config"],
            InputSummary(i["uri"], i["rows"], [SkippedFile(**s) for s in i["skipped_files"]],
                         [UnreadableRowGroup(**u) for u in i["unreadable_row_groups"]],
                         [InputFile(**f) for f in i["files"]], InputTable(**i["table"]) if i.get("table") else None),
            OutputSummary(o["rows_scored"], o["rows_dead_lettered"], o["dead_letter_reasons"],
                          [OutputFile(**f) for f in o["files"]], [OutputFile(**f) for f in o["dead_letter_files"]]),
            ResumeSummary(**d["resume"]), drift.Distributions(**d["distributions"]), d.get("timings", {}),
            drift.Drift(**d["drift"]) if d.get("drift") else None,
            {k: TableCommit(**v) for k, v in d.get("tables", {}).items()})
