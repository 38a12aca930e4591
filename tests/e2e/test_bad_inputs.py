"""The catalogue of bad inputs: each is fed to the `textcnn` CLI as a user would, and its exact outcome
asserted. A refused input exits 1 with one line naming the file, row or field, and no traceback; a
run that commits accounts for every input row (scored + dead-lettered == rows in, no id twice).

The CLI runs in this process (click's runner) on one local Ray for the module, so that some fifty
cases take minutes, not the hour that fifty processes each starting Ray would.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray
from click.testing import CliRunner

from tests.conftest import corrupt_pages
from textcnn.cli import main
from textcnn.scoring import runs

pytestmark = pytest.mark.e2e

DATE = "2026-12-06"
GOOD = ["a good film", "dull and slow", "great fun", "a bad film"]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@dataclass
class Case:
    name: str
    make: Callable[[Path, str], list[str]]   # (tmp dir, model dir) -> the CLI arguments
    exit: int                                # the exit status
    says: str = ""                           # a regex the one-line message must hold (file, row or field)
    dead: dict[str, int] | None = None       # a committing run: its dead letters by reason


def write(path: Path, table: pa.Table, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **kw)
    return path


def corpus(tmp: Path, ids: list | pa.Array | None = None, texts: list | pa.Array | None = None) -> Path:
    """A one-file corpus of good rows, with the given ids and texts where given."""
    ids = ids if ids is not None else [f"r{i}" for i in range(len(texts) if texts is not None else 8)]
    texts = texts if texts is not None else [GOOD[i % len(GOOD)] for i in range(len(ids))]
    write(tmp / "in" / "part-0.parquet", pa.table({"id": ids, "text": texts}))
    return tmp / "in"


def last(*values):
    """The last of values, each evaluated in turn: a case's steps in one expression."""
    return values[-1]


def score_args(tmp: Path, model: str, input_path: Path | str | None = None, *extra: str) -> list[str]:
    return ["score", "--model", model, "--input", str(input_path or corpus(tmp)), "--output", str(tmp / "out"),
            "--date", DATE, "--actors", "1", *extra]


def with_rows(**rows) -> Callable[[Path, str], list[str]]:
    """A scoring run of the good corpus with rows replaced: {index: (id, text)}."""
    def make(tmp: Path, model: str) -> list[str]:
        ids, texts = [f"r{i}" for i in range(8)], [GOOD[i % len(GOOD)] for i in range(8)]
        for key, (row_id, text) in rows.items():
            i = int(key[1:])
            ids[i], texts[i] = row_id, text
        return score_args(tmp, model, corpus(tmp, ids, texts))
    return make


def rehash(model: str) -> None:
    """Record the files' current hashes in config.json, as someone editing the directory with care
    would: what remains to catch is the content itself."""
    config_path = Path(model) / "config.json"
    config = json.loads(config_path.read_text())
    files = {n: hashlib.sha256((Path(model) / n).read_bytes()).hexdigest() for n in config["files_sha256"]}
    config["files_sha256"] = files
    config["weights_sha256"] = files["weights.pt"]
    config_path.write_text(json.dumps(config))


def edit(name: str, change: Callable[[Path], None], rehashed: bool = False) -> Callable[[Path, str], list[str]]:
    """A scoring run of a good corpus with the model directory's file `name` changed."""
    def make(tmp: Path, model: str) -> list[str]:
        change(Path(model) / name)
        if rehashed:
            rehash(model)
        return score_args(tmp, model)
    return make


def json_edit(fn: Callable[[object], object]) -> Callable[[Path], None]:
    return lambda path: path.write_text(json.dumps(fn(json.loads(path.read_text()))))


def config_field(section: str, key: str, value: object) -> Callable[[Path], None]:
    def change(config: dict) -> dict:
        (config[section] if section else config)[key] = value
        return config
    return json_edit(change)


class Pickled:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/textcnn-pwned",))


def pickle_payload(path: Path) -> None:
    path.write_bytes(pickle.dumps({"embed.weight": Pickled()}))


def corrupt_text_page(tmp: Path) -> Path:
    """A corpus whose second file has a sound footer and a corrupt text page in row group 0."""
    write(tmp / "in" / "part-0.parquet", pa.table({"id": [f"a{i}" for i in range(50)], "text": ["great fun"] * 50}))
    path = write(tmp / "in" / "part-1.parquet", pa.table({"id": [f"b{i}" for i in range(50)],
                                                          "text": [f"a good film {i}" for i in range(50)]}),
                 row_group_size=25)
    corrupt_pages(path, row_group=0, column=1)
    return tmp / "in"


def train_args(tmp: Path, texts: list, labels: list, *extra: str) -> list[str]:
    path = write(tmp / "train.parquet", pa.table({"text": pa.array(texts, pa.string()),
                                                  "label": pa.array(labels, pa.string())}))
    return ["train", "--train", str(path), "--output", str(tmp / "m"), "--epochs", "1", *extra]


def earlier_night(manifest: str) -> Callable[[Path, str], list[str]]:
    def make(tmp: Path, model: str) -> list[str]:
        bad = tmp / "out" / "_runs" / "run_date=2026-12-05" / "_SUCCESS"
        bad.parent.mkdir(parents=True)
        bad.write_text(manifest)
        return score_args(tmp, model)
    return make


def live_lock(tmp: Path, model: str) -> list[str]:
    lock = tmp / "out" / "_locks" / f"run_date={DATE}.json"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"token": "t", "host": os.uname().nodename, "pid": os.getpid(),
                                "heartbeat": 4102444800}))
    return score_args(tmp, model)


S, C = pa.string(), [f"r{i}" for i in range(8)]
CASES = [
    # ---- scoring input, refused before anything runs
    Case("input missing", lambda t, m: score_args(t, m, t / "nowhere"), 1, r"nowhere: not found"),
    Case("input folder without files", lambda t, m: (t / "in").mkdir() or score_args(t, m, t / "in"), 1,
         r"in: no files"),
    Case("input not Parquet", lambda t, m: last((t / "in").mkdir(), (t / "in" / "a.parquet").write_text("id,text"),
                                                score_args(t, m, t / "in")), 1, r"a\.parquet: not readable as Parquet"),
    Case("input truncated", lambda t, m: last((corpus(t) / "part-0.parquet").write_bytes(
        (t / "in" / "part-0.parquet").read_bytes()[:100]), score_args(t, m, t / "in")), 1,
         r"part-0\.parquet: not readable as Parquet"),
    Case("no id column", lambda t, m: score_args(t, m, None, "--id-column", "key"), 1,
         r"part-0\.parquet: no column 'key'"),
    Case("no text column", lambda t, m: score_args(t, m, None, "--text-column", "body"), 1,
         r"part-0\.parquet: no column 'body'"),
    Case("float ids", lambda t, m: score_args(t, m, corpus(t, [0.5 * i for i in range(8)])), 1,
         r"part-0\.parquet: column 'id' is double, not an integer or string"),
    Case("integer texts", lambda t, m: score_args(t, m, corpus(t, None, list(range(8)))), 1,
         r"part-0\.parquet: column 'text' is int64, not a string or binary"),
    Case("id types differ across files", lambda t, m: write(
        corpus(t) / "part-1.parquet", pa.table({"id": [1, 2], "text": ["great fun"] * 2}))
         and score_args(t, m, t / "in"),
         1, r"column 'id' has different types across files"),
    Case("id column named predicted_label", lambda t, m: write(t / "in" / "p.parquet", pa.table(
        {"predicted_label": C, "text": ["great fun"] * 8})) and score_args(
        t, m, t / "in", "--id-column", "predicted_label"), 1, r"id_column: 'predicted_label' is the name of a column"),
    Case("id column named run_id", lambda t, m: write(t / "in" / "p.parquet", pa.table(
        {"run_id": C, "text": ["great fun"] * 8})) and score_args(t, m, t / "in", "--id-column", "run_id"), 1,
         r"id_column: 'run_id'"),
    Case("output is the input", lambda t, m: score_args(t, m)[:-6] + ["--output", str(t / "in"), "--date", DATE], 1,
         r"output: .*in and the input .*in are the same place"),
    Case("output inside the input", lambda t, m: score_args(t, m)[:-6] + ["--output", str(t / "in" / "o"),
                                                                           "--date", DATE], 1, r"output: .*in/o"),
    Case("input inside the output", lambda t, m: score_args(t, m, corpus(t / "out")), 1,
         r"output: .*out and the input .*out/in"),
    Case("kept column missing in one file", lambda t, m: write(t / "in" / "part-0.parquet", pa.table(
        {"id": C, "text": ["great fun"] * 8, "lang": ["en"] * 8})) and write(t / "in" / "part-1.parquet", pa.table(
        {"id": ["z"], "text": ["great fun"]})) and score_args(t, m, t / "in", "--keep-columns", "lang"), 1,
         r"part-1\.parquet: no column 'lang'"),
    Case("kept column named like an output column", lambda t, m: score_args(t, m, None, "--keep-columns",
                                                                             "predicted_prob"), 1,
         r"keep_columns: 'predicted_prob' is the name of a column the score files hold already"),
    Case("kept column types differ across files", lambda t, m: write(t / "in" / "part-0.parquet", pa.table(
        {"id": C, "text": ["great fun"] * 8, "n": list(range(8))})) and write(t / "in" / "part-1.parquet", pa.table(
        {"id": ["z"], "text": ["great fun"], "n": ["one"]})) and score_args(t, m, t / "in", "--keep-columns", "n"),
         1, r"column 'n' has different types across files: int64 \(e\.g\. .*part-0\.parquet\), string"),
    Case("predict on a missing file", lambda t, m: ["predict", "--model", m, "--input", str(t / "nowhere.txt")], 1,
         r"DataError: .*nowhere\.txt: not found"),
    Case("corrupt text page", lambda t, m: score_args(t, m, corrupt_text_page(t)), 1,
         r"part-1\.parquet: row group 0 \(rows 0-24\): .*; not committed. Rerun with --skip-bad-files"),
    # ---- scoring rows: the run commits, each bad row a dead letter with its reason
    Case("null id", with_rows(r1=(None, "great fun")), 0, dead={"id_null": 1}),
    Case("blank id", with_rows(r1=("  ", "great fun")), 0, dead={"id_empty": 1}),
    Case("id too long", with_rows(r1=("x" * 300, "great fun")), 0, dead={"id_too_long": 1}),
    Case("duplicate id", with_rows(r5=("r1", "great fun")), 0, dead={"id_duplicate": 1}),
    Case("duplicate id across files", lambda t, m: write(corpus(t) / "part-1.parquet", pa.table(
        {"id": ["r3", "z"], "text": ["great fun"] * 2})) and score_args(t, m, t / "in"), 0, dead={"id_duplicate": 1}),
    Case("null text", with_rows(r2=("r2", None)), 0, dead={"text_null": 1}),
    Case("empty text", with_rows(r2=("r2", "")), 0, dead={"text_empty": 1}),
    Case("blank text", with_rows(r2=("r2", " \t\n ")), 0, dead={"text_empty": 1}),
    Case("NUL in text", with_rows(r2=("r2", "good\x00film")), 0, dead={"text_control_chars": 1}),
    Case("DEL in text", with_rows(r2=("r2", "good\x7ffilm")), 0, dead={"text_control_chars": 1}),
    Case("C1 control in text", with_rows(r2=("r2", "good\x85film"), r3=("r3", "a\x9b31m bad film")), 0,
         dead={"text_control_chars": 2}),
    Case("text too long", lambda t, m: with_rows(r2=("r2", "fun " * 300))(t, m) + ["--max-text-chars", "1000"], 0,
         dead={"text_too_long": 1}),
    Case("text of unknown words only", with_rows(r2=("r2", "qwzx vbnm")), 0, dead={"text_unknown_only": 1}),
    Case("bytes not UTF-8", lambda t, m: score_args(t, m, corpus(t, None, pa.array(
        [g.encode() for g in GOOD] + [b"\xff\xfe bad"], pa.binary()))), 0, dead={"text_invalid_utf8": 1}),
    Case("corrupt text page, skipped", lambda t, m: score_args(t, m, corrupt_text_page(t), "--skip-bad-files"), 0,
         dead={"row_group_unreadable": 25}),
    Case("truncated file, skipped", lambda t, m: write(corpus(t) / "part-1.parquet", pa.table(
        {"id": ["z"], "text": ["x"]})) and (t / "in" / "part-1.parquet").write_bytes(b"PAR1junk") and score_args(
        t, m, t / "in", "--skip-bad-files"), 0, dead={}),
    Case("dictionary-encoded strings", lambda t, m: score_args(t, m, corpus(
        t, pa.array(C).dictionary_encode(), pa.array([GOOD[i % 4] for i in range(8)]).dictionary_encode())), 0,
         dead={}),
    Case("string_view columns", lambda t, m: score_args(t, m, corpus(
        t, pa.array(C, pa.string_view()), pa.array([GOOD[i % 4] for i in range(8)], pa.string_view()))), 0, dead={}),
    Case("large_string columns", lambda t, m: score_args(t, m, corpus(
        t, pa.array(C, pa.large_string()), pa.array([GOOD[i % 4] for i in range(8)], pa.large_string()))), 0,
         dead={}),
    Case("a file of zero rows", lambda t, m: score_args(t, m, corpus(t, pa.array([], S), pa.array([], S))), 0,
         dead={}),
    # ---- model directory
    Case("model directory missing", lambda t, m: score_args(t, str(t / "no-model")), 1, r"no-model: not found"),
    Case("vocab.json missing", edit("vocab.json", os.remove), 1, r"vocab\.json: missing"),
    Case("weights tampered", edit("weights.pt", lambda p: p.write_bytes(p.read_bytes() + b"x")), 1,
         r"weights\.pt: sha256 .* does not match"),
    Case("vocab.json edited", edit("vocab.json", json_edit(lambda v: {**v, "tokens": v["tokens"][:-1] + ["zzz"]})),
         1, r"vocab\.json: sha256 .* does not match"),
    Case("labels.json reordered", edit("labels.json", json_edit(lambda v: v[::-1])), 1,
         r"labels\.json: sha256 .* does not match"),
    Case("labels.json of three labels", edit("labels.json", json_edit(lambda v: v + ["other"]), rehashed=True), 1,
         r"labels\.json: 3 label\(s\) for a model of 2 outputs"),
    Case("labels.json naming one label twice", edit("labels.json", json_edit(lambda v: [v[0], v[0]]), True), 1,
         r"labels\.json: label\(s\) named more than once: \['neg'\]"),
    Case("labels.json not JSON", edit("labels.json", lambda p: p.write_text("neg,pos"), rehashed=True), 1,
         r"labels\.json: not valid JSON"),
    Case("config.json not JSON", edit("config.json", lambda p: p.write_text("{model: 1")), 1,
         r"config\.json: not valid JSON"),
    Case("config.json field of the wrong type", edit("config.json", config_field("model", "num_classes", "two")), 1,
         r"config\.json: field model\.num_classes is 'two'"),
    Case("config.json model not an object", edit("config.json", config_field("", "model", [1])), 1,
         r"config\.json: field model is list"),
    Case("weights_file outside the directory", edit("config.json", config_field("", "weights_file",
                                                                                 "../x/weights.pt")), 1,
         r"config\.json: field weights_file is '\.\./x/weights\.pt'"),
    Case("weights.pt a pickle payload", edit("weights.pt", pickle_payload, rehashed=True), 1,
         r"weights\.pt: holds pickled objects other than tensors; refused"),
    Case("vocab.json not a vocabulary", edit("vocab.json", lambda p: p.write_text('{"x": 1}'), rehashed=True), 1,
         r"vocab\.json: not a vocabulary"),
    # ---- output folder
    Case("an earlier night's manifest is junk", earlier_night('{"run": "junk"}'), 0, dead={}),
    Case("an earlier night's manifest is not JSON", earlier_night("{"), 0, dead={}),
    Case("output holds runs by id", lambda t, m: (t / "out" / "scores" / "run=x").mkdir(parents=True)
         or score_args(t, m), 1, r"output: .*out holds runs named run=x"),
    Case("a live run holds the date", live_lock, 1, r"_locks/run_date=2026-12-06\.json is held by a live run"),
    # ---- CLI flags
    Case("date not a date", lambda t, m: score_args(t, m)[:-4] + ["--date", "2026-13-01"], 1,
         r"run_date: must be a date"),
    Case("run id with a slash", lambda t, m: score_args(t, m)[:-4] + ["--run-id", "../x"], 1, r"run_id: must match"),
    Case("negative actors", lambda t, m: score_args(t, m)[:-2] + ["--actors", "-1"], 1, r"actors: must be >= 0"),
    Case("unit rows 0", lambda t, m: score_args(t, m, None, "--unit-rows", "0"), 1, r"unit_rows: must be >= 1"),
    Case("explain -1", lambda t, m: score_args(t, m, None, "--explain", "-1"), 1, r"explain: must be >= 0"),
    Case("explain -k -1", lambda t, m: ["explain", "--model", m, "--text", "good", "-k", "-1"], 1,
         r"-k/--top: must be >= 1, got -1"),
    Case("export into its own model directory", lambda t, m: ["export", "--model", m, "--format", "torchscript",
                                                             "--output", m], 1,
         r"ExportError: --output .*model is, or lies inside, the model directory"),
    # ---- training input
    Case("train on a file of zero rows", lambda t, m: train_args(t, [], []), 1, r"train\.parquet has no rows"),
    Case("train on empty texts", lambda t, m: train_args(t, [""] * 20, ["a", "b"] * 10), 1,
         r"train\.parquet: every text in column 'text' is empty"),
    Case("train without its label column", lambda t, m: train_args(t, ["x"], ["a"], "--label-column", "y"), 1,
         r"train\.parquet has no column\(s\) \['y'\]"),
    Case("train on one class", lambda t, m: train_args(t, GOOD * 5, ["a"] * 20), 1, r"needs at least 2 classes"),
]


def test_the_catalogue_is_large():
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, tiny_model_dir: str):
    args = case.make(tmp_path, tiny_model_dir)
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    output = result.output
    assert result.exit_code == case.exit, f"{args}\n{output}\n{result.exception!r}"
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if case.exit:
        errors = [line for line in output.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and output.rstrip().endswith(errors[0]), output      # the error is one last line
        assert re.search(case.says, errors[0]), f"{case.says!r} not in {errors[0]!r}"
    if case.dead is not None:
        _assert_every_row_accounted_for(tmp_path, case.dead)
    assert not os.path.exists("/tmp/textcnn-pwned")


def _assert_every_row_accounted_for(tmp: Path, dead: dict[str, int]) -> None:
    layout = runs.Layout(str(tmp / "out"), f"run_date={DATE}")
    manifest = runs.read_manifest(layout)
    scores, letters = runs.read_run(layout), runs.read_run(layout, dead_letter=True)
    assert manifest.input.rows == scores.num_rows + letters.num_rows
    assert manifest.output.rows_scored == scores.num_rows
    assert manifest.output.dead_letter_reasons == dead
    ids = scores["id"].to_pylist() if scores.num_rows else []
    assert None not in ids and len(set(ids)) == len(ids)
