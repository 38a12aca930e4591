"""The `textcnn` command line: parse, call the library, report. Job scripts reuse these commands."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from textcnn.config import PLACEMENTS, ConfigError, ModelConfig, ScoreConfig, TokenizerConfig, TrainConfig

log = logging.getLogger("textcnn")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known failures (bad config, data, model dir, resources) end in one line and exit 1."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from textcnn.artifacts import ModelDirError
        from textcnn.data import DataError
        from textcnn.export import ExportError
        from textcnn.runs import LockedError
        from textcnn.runtime import ResourceError
        from textcnn.score import DriftError, ReconcileError
        from textcnn.storage import StorageError
        known = (ConfigError, DataError, ModelDirError, ResourceError, StorageError, LockedError,
                 DriftError, ReconcileError, ExportError)
        try:
            return fn(*args, **kwargs)
        except known as e:
            e = e.cause if isinstance(getattr(e, "cause", None), known) else e   # raised in a Ray task
            message = str(e).split("\nTo change retry attempts")[0]               # Ray Data's hint
            raise click.ClickException(f"{type(e).__name__}: {message}") from None
        except Exception as e:   # a stage's error arrives wrapped by Ray; name the cause when it is ours
            cause = _known_cause(e, known)
            if cause is None:
                raise
            raise click.ClickException(f"{type(cause).__name__}: {cause}") from None
    return wrapper


def _known_cause(e: BaseException, known: tuple[type, ...]) -> BaseException | None:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, known):
            return e
        e = e.__cause__ or e.__context__
    return None


def _s3_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Overrides of the AWS chain (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, ~/.aws), applied
    before the command runs."""
    @wraps(command)
    def configured(*args: Any, s3_endpoint: str | None, s3_region: str | None,
                   aws_profile: str | None, **kwargs: Any) -> Any:
        from textcnn.storage import configure_s3
        configure_s3(s3_endpoint, s3_region, aws_profile)
        return command(*args, **kwargs)
    fn = click.option("--aws-profile", default=None, help="AWS profile for s3:// paths.")(configured)
    fn = click.option("--s3-region", default=None, help="S3 region.")(fn)
    return click.option("--s3-endpoint", default=None,
                        help="S3-compatible endpoint URL, e.g. http://127.0.0.1:9000 (MinIO).")(fn)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Train text CNN classifiers and score large Parquet corpora on Ray."""
    _setup_logging(verbose)


@click.command("train")
@click.option("--train", "train_path", required=True, help="Training Parquet file or folder.")
@click.option("--output", required=True, help="Model directory to write.")
@click.option("--val", "val_path", default=None, help="Validation Parquet; default: 10% of --train.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--workers", default=1, show_default=True, help="Ray Train workers (DDP).")
@click.option("--gpus", is_flag=True, help="One GPU per worker.")
@click.option("--epochs", default=TrainConfig.epochs, show_default=True)
@click.option("--batch-size", default=TrainConfig.batch_size, show_default=True, help="Per worker.")
@click.option("--lr", default=TrainConfig.lr, show_default=True)
@click.option("--max-length", default=TokenizerConfig.max_length, show_default=True,
              help="Tokens kept per text.")
@click.option("--seed", default=0, show_default=True)
@click.option("--storage-path", default=None, help="Where Ray Train keeps checkpoints.")
@click.option("--run-name", default=None, help="Ray Train run name; reuse it to resume a run.")
@click.option("--max-failures", default=TrainConfig.max_failures, show_default=True,
              help="Restarts from the last checkpoint after a worker or node failure (-1: forever).")
@click.option("--placement", default=TrainConfig.placement, show_default=True,
              type=click.Choice(PLACEMENTS),
              help="How Ray places the workers over nodes.")
@_s3_options
@_friendly_errors
def train_cmd(train_path: str, output: str, val_path: str | None, text_column: str, label_column: str,
              workers: int, gpus: bool, epochs: int, batch_size: int, lr: float, max_length: int,
              seed: int, storage_path: str | None, run_name: str | None, max_failures: int,
              placement: str) -> None:
    """Train a text CNN on Ray Train and export the best epoch to OUTPUT."""
    from textcnn.train import fit
    config = TrainConfig(train=train_path, output=output, val=val_path, text_column=text_column,
                         label_column=label_column, workers=workers, use_gpu=gpus, epochs=epochs,
                         batch_size=batch_size, lr=lr, seed=seed, storage_path=storage_path,
                         run_name=run_name, max_failures=max_failures, placement=placement,
                         model=ModelConfig(),
                         tokenizer=TokenizerConfig(max_length=max_length))
    result = fit(config)
    m = result.metrics
    click.echo(f"model {result.model_version} written to {result.output}: best epoch {m['epoch']}, "
               f"val accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
               f"{result.seconds:.1f} s")


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


@click.command("score")
@click.option("--model", required=True, help="Model directory from `textcnn train`.")
@click.option("--input", "input_path", required=True, help="Parquet file or folder to score.")
@click.option("--output", required=True,
              help="Root folder; the run is written to OUTPUT/run_date=DATE/ (replacing an earlier run).")
@click.option("--date", "run_date", default=None, help="The run's date, YYYY-MM-DD; default: today (UTC).")
@click.option("--run-id", default=None, help="Name the run OUTPUT/run_id=ID/ instead of by date.")
@click.option("--id-column", default="id", show_default=True)
@click.option("--text-column", default="text", show_default=True)
@click.option("--actors", default=0, show_default=True,
              help="Scoring actors; 0: one per CPU core of the cluster (one per GPU with --gpus).")
@click.option("--batch-size", default=ScoreConfig.batch_size, show_default=True)
@click.option("--gpus", is_flag=True, help="One GPU per actor.")
@click.option("--cpus-per-actor", default=ScoreConfig.cpus_per_actor, show_default=True,
              help="Logical CPUs each actor reserves; its torch threads follow.")
@click.option("--unit-rows", default=ScoreConfig.unit_rows, show_default=True,
              help="Rows per unit of work (committed, and skipped on resume, as one).")
@click.option("--max-text-chars", default=ScoreConfig.max_text_chars, show_default=True,
              help="Longer texts are dead-lettered.")
@click.option("--allow-unknown-only", is_flag=True,
              help="Score texts with no in-vocabulary token instead of dead-lettering them.")
@click.option("--skip-bad-files", is_flag=True,
              help="List unreadable input files in the manifest as skipped instead of failing.")
@click.option("--max-drift", default=None, type=float,
              help="Fail before committing when drift (PSI) vs the previous run is larger.")
@click.option("--lock-ttl", default=ScoreConfig.lock_ttl, show_default=True,
              help="Seconds without a heartbeat after which another host's lock counts as stale.")
@click.option("--explain", default=0, show_default=True, metavar="K",
              help="Add an `explanation` column: the K n-grams behind each score.")
@_s3_options
@_friendly_errors
def score_cmd(model: str, input_path: str, output: str, run_date: str | None, run_id: str | None,
              id_column: str, text_column: str, actors: int, batch_size: int, gpus: bool,
              cpus_per_actor: float, unit_rows: int, max_text_chars: int, allow_unknown_only: bool,
              skip_bad_files: bool, max_drift: float | None, lock_ttl: float, explain: int) -> None:
    """Score INPUT with MODEL into OUTPUT/run_date=DATE/: score files, dead_letter/ and _SUCCESS."""
    from textcnn.score import score
    summary = score(ScoreConfig(
        model=model, input=input_path, output=output, run_date="" if run_id else (run_date or _today()),
        run_id=run_id or "", id_column=id_column, text_column=text_column, actors=actors,
        batch_size=batch_size, use_gpu=gpus, cpus_per_actor=cpus_per_actor, unit_rows=unit_rows,
        max_text_chars=max_text_chars, allow_unknown_only=allow_unknown_only,
        skip_bad_files=skip_bad_files, max_drift=max_drift, lock_ttl=lock_ttl, explain=explain))
    click.echo(summary.line())


@click.command("eval")
@click.option("--model", required=True, help="Model directory from `textcnn train`.")
@click.option("--data", required=True, help="Labelled Parquet file or folder.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--output", default=None, help="Where to write the JSON report; default <model>/eval.json.")
@_s3_options
@_friendly_errors
def eval_cmd(model: str, data: str, text_column: str, label_column: str, output: str | None) -> None:
    """Print accuracy, macro-F1, per-class precision/recall and the confusion matrix as JSON."""
    from textcnn import storage
    from textcnn.evaluation import evaluate_parquet
    report = evaluate_parquet(model, data, text_column, label_column)
    output = output or storage.join(model, "eval.json")
    text = json.dumps(report, indent=2, ensure_ascii=False)
    storage.write_text(output, text + "\n")
    click.echo(text)
    log.info("report written to %s", output)


@click.command("export")
@click.option("--model", required=True, help="Model directory from `textcnn train`.")
@click.option("--format", "fmt", required=True, type=click.Choice(["torchscript", "onnx"]))
@click.option("--output", required=True, help="Directory for the exported model.")
@click.option("--tolerance", default=1e-4, show_default=True,
              help="Largest probability difference from PyTorch the export may show.")
@_s3_options
@_friendly_errors
def export_cmd(model: str, fmt: str, output: str, tolerance: float) -> None:
    """Export MODEL as TorchScript or ONNX; fails unless its scores match PyTorch's."""
    from textcnn.export import export
    parity = export(model, fmt, output, tolerance)
    click.echo(f"{fmt} model written to {output}: max probability difference from PyTorch "
               f"{parity['max_abs_prob_diff']:.2e} on {parity['rows']} rows (tolerance {tolerance:g})")


@click.command("explain")
@click.option("--model", required=True, help="Model directory from `textcnn train`.")
@click.option("--text", "texts", required=True, multiple=True, help="A text to explain (repeatable).")
@click.option("-k", "--top", "k", default=5, show_default=True, help="N-grams to show per text.")
@_s3_options
@_friendly_errors
def explain_cmd(model: str, texts: tuple[str, ...], k: int) -> None:
    """Print, per text, the predicted label and the K n-grams whose filters pushed it most."""
    from textcnn import artifacts
    from textcnn.explain import explain_texts
    from textcnn.model import TextCNN
    loaded = artifacts.load(model)
    if not isinstance(loaded.model, TextCNN):
        raise ConfigError(f"model: explanations need the PyTorch model directory; {model} is an export")
    for row in explain_texts(loaded.model, loaded.tokenizer, loaded.labels, list(texts), k):
        click.echo(json.dumps(row, ensure_ascii=False))


for _cmd in (train_cmd, score_cmd, eval_cmd, export_cmd, explain_cmd):
    main.add_command(_cmd)


def run_job(command: click.Command) -> None:
    """Entry for jobs/*.py: the CLI command with logging configured."""
    _setup_logging(verbose=False)
    command(prog_name=f"python jobs/{command.name}.py")
