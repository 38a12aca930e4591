"""The `textcnn` command line: parse, call the library, report. Job scripts reuse these commands."""

from __future__ import annotations

import datetime
import gc
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

import click

from textcnn import console, stopping
from textcnn.config import (
    CLASS_WEIGHTS,
    NGRAM_INITS,
    PLACEMENTS,
    PRECISIONS,
    PREDICT_BATCH_ROWS,
    PREDICT_FORMATS,
    REFIT_SCHEDULES,
    SCORE_PRECISIONS,
    SPLITS,
    ConfigError,
    ModelConfig,
    ScoreConfig,
    TokenizerConfig,
    TrainConfig,
)
from textcnn.errors import TextcnnError

log = logging.getLogger("textcnn")


def _setup_logging(verbose: bool) -> None:
    console.setup(verbose)


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Known failures (TextcnnError: bad config, data, model dir, storage, cluster) end in one line
    and exit 1; anything else keeps its traceback."""
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:   # a stage's error arrives wrapped by Ray; name the cause when it is ours
            cause = _known_cause(e)                    # e itself first
            if cause is None:
                raise
            raise click.ClickException(f"{type(cause).__name__}: {_first_part(cause)}") from None
    return wrapper


def _first_part(error: BaseException) -> str:
    """The error's message; an error raised in a Ray task arrives as Ray's subclass of it, whose cause
    is the original, and Ray Data appends a hint on retries that is not ours to show."""
    if isinstance(getattr(error, "cause", None), TextcnnError):
        error = error.cause
    return str(error).split("\nTo change retry attempts")[0]


def _known_cause(e: BaseException) -> TextcnnError | None:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TextcnnError):
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
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and Ray's own logs.")
def main(verbose: bool) -> None:
    """Train text CNN classifiers and score large Parquet corpora on Ray."""
    _setup_logging(verbose)


def _kernel_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        return tuple(int(k) for k in value.split(","))
    except ValueError:
        raise click.BadParameter(f"expected widths like 3,4,5, got {value!r}") from None


_T, _M = TrainConfig, ModelConfig
_split_option = click.option(
    "--split", default=TokenizerConfig.split, show_default=True, type=click.Choice(SPLITS),
    help="words: words and punctuation, CJK characters one by one; chars: every character, "
         "whitespace runs as one token; auto: chars when most of the text is CJK.")


def _val_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--val and --val-fraction, the same for train and tune."""
    fn = click.option("--val-fraction", default=_T.val_fraction, show_default=True,
                      help="Share of --train held out for validation when --val is not given.")(command)
    return click.option("--val", "val_path", default=None,
                        help="Validation Parquet; default: --val-fraction of --train.")(fn)


def _embedding_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--embeddings and --freeze-embeddings, the same for train and tune."""
    fn = click.option("--freeze-embeddings", is_flag=True,
                      help="Keep the --embeddings vectors as read (words not in the file still learn).")(command)
    return click.option("--embeddings", default=None,
                        help="word2vec (text or binary) or GloVe file, .gz too: starting vectors of the words "
                             "it has (their dimension is the embedding size).")(fn)


_refit_option = click.option(
    "--refit/--no-refit", default=_T.refit, show_default=True,
    help="When --val is not given: once the epoch count is picked on the rows held out (tune: the best "
         "trial's), train again on every row for that many epochs and export that model; --no-refit "
         "exports the best epoch itself.")
_refit_schedule_option = click.option(
    "--refit-schedule", default=_T.refit_schedule, show_default=True, type=click.Choice(REFIT_SCHEDULES),
    help="Epochs the refit trains: picked (the count validation picked), full (the whole schedule), "
         "auto (full when fewer than 500 rows are held out: too few to pick a count).")


def _refit_text(refit: dict[str, Any] | None) -> str:
    return f"; refit on all {refit['rows']} rows for {refit['epochs']} epoch(s)" if refit else ""


@click.command("train")
@click.option("--train", "train_path", required=True, help="Training Parquet file or folder.")
@click.option("--output", required=True, help="Model directory to write.")
@_val_options
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True,
              help="Class names; a list column (list<string>) trains a multi-label model.")
@click.option("--workers", default=1, show_default=True, help="Ray Train workers (DDP).")
@click.option("--gpus", is_flag=True, help="One GPU per worker.")
@click.option("--epochs", default=_T.epochs, show_default=True,
              help="At most; early stopping may end sooner. 0: 6, more for small training sets (up to 30).")
@click.option("--patience", default=_T.patience, show_default=True,
              help="Epochs without a better validation metric before stopping (0: never).")
@click.option("--batch-size", default=_T.batch_size, show_default=True, help="Per worker.")
@click.option("--lr", default=_T.lr, show_default=True, help="Peak AdamW learning rate.")
@click.option("--ngram-lr", default=_T.ngram_lr, show_default=True, help="Peak rate of the n-gram branch.")
@click.option("--ngram-init", default=_T.ngram_init, show_default=True, type=click.Choice(NGRAM_INITS),
              help="Starting weights of the n-gram branch: logistic regression or naive Bayes over the training rows, "
                   "or zeros; auto: logistic with IDF weights under 1,500 training rows, naive Bayes otherwise.")
@click.option("--warmup", "warmup_fraction", default=_T.warmup_fraction, show_default=True,
              help="Share of the steps spent warming up; the rate then decays linearly to 0.")
@click.option("--weight-decay", default=_T.weight_decay, show_default=True)
@click.option("--clip-norm", default=_T.clip_norm, show_default=True, help="Gradient norm clipping (0: off).")
@click.option("--token-dropout", default=_T.token_dropout, show_default=True,
              help="Share of each training row's tokens replaced by <unk> at every step.")
@_refit_option
@_refit_schedule_option
@click.option("--class-weights", default=_T.class_weights, show_default=True,
              type=click.Choice(CLASS_WEIGHTS), help="balanced: weigh classes inversely to their frequency.")
@click.option("--precision", default=_T.precision, show_default=True, type=click.Choice(PRECISIONS),
              help="auto: bf16 autocast on GPU, fp32 on CPU.")
@click.option("--max-length", default=0, show_default=True,
              help="Tokens kept per text; 0: the training texts' 95th percentile (16..512).")
@_split_option
@click.option("--kernel-sizes", default=None, callback=_kernel_sizes,
              help="Convolution widths, e.g. 3,4,5; default: 1,2,3 for CJK text, 3,4,5 otherwise.")
@click.option("--filters", "num_filters", default=_M.num_filters, show_default=True, help="Per width.")
@click.option("--embed-dim", default=_M.embed_dim, show_default=True)
@click.option("--dropout", default=_M.dropout, show_default=True)
@click.option("--ngram-buckets", default=_M.ngram_buckets, show_default=True,
              help="Hash buckets of the linear unigram+bigram branch added to the CNN's logits "
                   "(0: off; -1: 2**21 for two classes, fewer for more, at most 2**22 weights).")
@click.option("--ngram-idf/--no-ngram-idf", default=None,
              help="Weigh the branch's n-grams by IDF, as TF-IDF does; default: on for CJK corpora.")
@_embedding_options
@click.option("--seed", default=0, show_default=True)
@click.option("--storage-path", default=None,
              help="Where Ray Train keeps checkpoints (removed once the model is written); default: "
                   "_checkpoints/ beside an s3:// --output, else ~/.cache/textcnn/checkpoints.")
@click.option("--run-name", default=None, help="Ray Train run name; reuse it to resume a run.")
@click.option("--max-failures", default=_T.max_failures, show_default=True,
              help="Restarts from the last checkpoint after a worker or node failure (-1: forever).")
@click.option("--placement", default=_T.placement, show_default=True,
              type=click.Choice(PLACEMENTS),
              help="How Ray places the workers over nodes.")
@_s3_options
@_friendly_errors
def train_cmd(train_path: str, output: str, val_path: str | None, max_length: int, split: str,
              kernel_sizes: tuple[int, ...], num_filters: int, embed_dim: int, dropout: float,
              ngram_buckets: int, ngram_idf: bool | None, gpus: bool, **options: Any) -> None:
    """Train a text CNN on Ray Train and export the best epoch to OUTPUT."""
    from textcnn.training.train import fit
    config = TrainConfig(train=train_path, output=output, val=val_path, use_gpu=gpus, **options,
                         model=ModelConfig(kernel_sizes=kernel_sizes, num_filters=num_filters,
                                           embed_dim=embed_dim, dropout=dropout, ngram_buckets=ngram_buckets,
                                           ngram_idf=ngram_idf),
                         tokenizer=TokenizerConfig(max_length=max_length, split=split))
    result = fit(config)
    m = result.metrics
    click.echo(f"model {result.model_version} written to {result.output}: best epoch {m['epoch'] + 1} of "
               f"{len(result.history)}, val accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
               f"micro-F1 {m['micro_f1']:.4f}{_refit_text(result.refit)}, {result.seconds:.1f} s")


@click.command("tune")
@click.option("--train", "train_path", required=True, help="Training Parquet file or folder.")
@click.option("--output", required=True,
              help="Model directory for the best trial (refit on every row unless --no-refit).")
@_val_options
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--samples", default=8, show_default=True, help="Hyperparameter draws (trials).")
@click.option("--epochs", default=_T.epochs, show_default=True,
              help="At most, per trial. 0: 6, more for small training sets (up to 30).")
@click.option("--grace-epochs", default=1, show_default=True,
              help="Epochs every trial runs before ASHA may stop it.")
@click.option("--cpus-per-trial", default=1.0, show_default=True)
@_refit_option
@_refit_schedule_option
@click.option("--max-length", default=0, show_default=True, help="0: from the training texts.")
@_split_option
@_embedding_options
@click.option("--seed", default=0, show_default=True)
@click.option("--storage-path", default=None,
              help="Where Ray Tune keeps trials (removed once the model is written); default: _tune/ beside "
                   "an s3:// --output, else ~/.cache/textcnn/tune.")
@click.option("--run-name", default=None, help="Ray Tune experiment name.")
@_s3_options
@_friendly_errors
def tune_cmd(train_path: str, output: str, val_path: str | None, samples: int, grace_epochs: int,
             cpus_per_trial: float, max_length: int, split: str, **options: Any) -> None:
    """Search embedding size (unless --embeddings sets it), widths, filters, dropout and learning
    rate with Ray Tune (ASHA); export the best model to OUTPUT."""
    from textcnn.training.tune import run_search
    config = TrainConfig(train=train_path, output=output, val=val_path, **options,
                         tokenizer=TokenizerConfig(max_length=max_length, split=split))
    result = run_search(config, samples, cpus_per_trial, grace_epochs)
    for t in sorted(result.trials, key=lambda t: -t["best_val_metric"]):
        click.echo("trial " + json.dumps(t))
    click.echo(f"best {json.dumps(result.best)}: val accuracy {result.metrics['accuracy']:.4f}, "
               f"macro-F1 {result.metrics['macro_f1']:.4f}{_refit_text(result.refit)}; "
               f"model {result.model_version} written to {result.output} ({result.seconds:.1f} s)")


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _column_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in value.split(",")) if value else ()


@click.command("score")
@click.option("--model", required=True, help="Model directory from `textcnn train`.")
@click.option("--input", "input_path", default=None, help="Parquet file or folder to score.")
@click.option("--input-table", default=None, metavar="NAMESPACE.TABLE",
              help="Instead of --input: score this Iceberg table's current snapshot (in --catalog).")
@click.option("--since-snapshot", default=None, type=int, metavar="ID",
              help="With --input-table: only the rows appended after snapshot ID (the incremental night).")
@click.option("--output", required=True,
              help="Root folder: the run's scores go to OUTPUT/scores/run_date=DATE/, its dead letters to "
                   "OUTPUT/dead_letters/run_date=DATE/ (replacing an earlier run of that date).")
@click.option("--date", "run_date", default=None, help="The run's date, YYYY-MM-DD; default: today (UTC).")
@click.option("--run-id", default=None, help="Name the run run=ID instead of by date (OUTPUT/scores/run=ID/).")
@click.option("--id-column", default="id", show_default=True,
              help="The input's id column; with --no-id, the name of the column of made-up ids in the output.")
@click.option("--no-id", is_flag=True,
              help="The input has no ids: each row's id is '<file relative to --input>:<row>' (row 0-based).")
@click.option("--text-column", default="text", show_default=True)
@click.option("--keep-columns", default=None, callback=_column_list, metavar="A,B",
              help="Input columns copied into the score files, after the id (not into dead letters).")
@click.option("--actors", default=0, show_default=True,
              help="Scoring actors; 0: one per CPU core of the cluster (one per GPU with --gpus).")
@click.option("--batch-size", default=ScoreConfig.batch_size, show_default=True,
              help="Rows per model call; 0: 4096 on CPU, 8192 on GPU.")
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
@click.option("--precision", default=ScoreConfig.precision, show_default=True, type=click.Choice(SCORE_PRECISIONS),
              help="auto: bf16 autocast on GPU, fp32 on CPU; int8: dynamic quantization on CPU "
                   "(faster; jobs/bench.py prints its accuracy change).")
@click.option("--output-table", default=None, metavar="NAMESPACE.TABLE",
              help="Commit the night to Iceberg tables NAMESPACE.TABLE and NAMESPACE.TABLE_dead_letters, one "
                   "snapshot each (OUTPUT keeps the run's state and manifests); needs textcnn[iceberg].")
@click.option("--catalog", default=ScoreConfig.catalog, show_default=True,
              help="pyiceberg catalog of --output-table (~/.pyiceberg.yaml, PYICEBERG_CATALOG__<NAME>__*); "
                   "not configured: SQLite in OUTPUT/_catalog, tables in OUTPUT/_warehouse.")
@_s3_options
@_friendly_errors
def score_cmd(model: str, input_path: str, output: str, run_date: str | None, run_id: str | None,
              id_column: str, text_column: str, actors: int, batch_size: int, gpus: bool,
              cpus_per_actor: float, unit_rows: int, max_text_chars: int, allow_unknown_only: bool,
              skip_bad_files: bool, max_drift: float | None, lock_ttl: float, explain: int,
              precision: str, keep_columns: tuple[str, ...], no_id: bool, output_table: str | None,
              catalog: str, input_table: str | None, since_snapshot: int | None) -> None:
    """Score INPUT with MODEL: OUTPUT/scores/run_date=DATE/ (score files only), OUTPUT/dead_letters/
    run_date=DATE/, and the manifest OUTPUT/_runs/run_date=DATE/_SUCCESS, written last."""
    from textcnn.scoring.run import score
    if bool(input_path) == bool(input_table):
        raise ConfigError("input: give --input PATH or --input-table NAMESPACE.TABLE (one of them)")
    summary = score(ScoreConfig(
        model=model, input=input_path or "", output=output, run_date="" if run_id else (run_date or _today()),
        run_id=run_id or "", id_column=id_column, text_column=text_column, actors=actors,
        batch_size=batch_size, use_gpu=gpus, cpus_per_actor=cpus_per_actor, unit_rows=unit_rows,
        max_text_chars=max_text_chars, allow_unknown_only=allow_unknown_only,
        skip_bad_files=skip_bad_files, max_drift=max_drift, lock_ttl=lock_ttl, explain=explain,
        precision=precision, keep_columns=keep_columns, no_id=no_id, output_table=output_table or "",
        catalog=catalog, input_table=input_table or "", since_snapshot=since_snapshot))
    click.echo(summary.line())


@click.command("predict")
@click.option("--model", required=True, help="Model directory from `textcnn train` (or an export).")
@click.option("--input", "input_path", default=None,
              help="txt (a text a line), csv, jsonl or Parquet file; default (or -): stdin, a text a line.")
@click.option("--format", "fmt", default="auto", show_default=True, type=click.Choice(("auto",) + PREDICT_FORMATS),
              help="auto: from the file's suffix (.csv, .jsonl/.ndjson, .parquet/.pq; anything else is txt).")
@click.option("--text-column", default="text", show_default=True, help="Of csv, jsonl and Parquet input.")
@click.option("--all", "all_classes", is_flag=True,
              help="Add every class's probability: \"probabilities\": {class: p}, in the model's class order.")
@click.option("--batch-size", default=PREDICT_BATCH_ROWS, show_default=True, help="Texts read and scored at a time.")
@click.option("--threads", default=0, show_default=True, help="Torch threads; 0: torch's default.")
@click.option("--gpu", is_flag=True, help="Score on the GPU.")
@click.option("--max-text-chars", default=ScoreConfig.max_text_chars, show_default=True,
              help="Longer texts print {\"error\": \"text_too_long\"}.")
@click.option("--allow-unknown-only", is_flag=True, help="Score texts with no in-vocabulary token.")
@_s3_options
@_friendly_errors
def predict_cmd(model: str, input_path: str | None, fmt: str, text_column: str, all_classes: bool,
                batch_size: int, threads: int, gpu: bool, max_text_chars: int, allow_unknown_only: bool) -> None:
    """Print one JSON line per input text, in input order, without Ray: {"label", "probability"}
    (multi-label models: "labels" too, every class at or above its threshold); a text `textcnn score`
    would dead-letter prints {"error": <its reason>} instead, so output line N answers input line N."""
    import torch

    from textcnn.core.rows import RowLimits
    from textcnn.scoring.adhoc import predict_lines, read_texts
    from textcnn.scoring.scorer import Scorer
    if batch_size < 1 or threads < 0:
        raise ConfigError(f"--batch-size must be >= 1 and --threads >= 0, got {batch_size} and {threads}")
    scorer = Scorer(model, use_gpu=gpu, threads=threads or torch.get_num_threads())
    texts = read_texts(input_path, sys.stdin.buffer, fmt, text_column, batch_size)
    limits = RowLimits(max_text_chars, ScoreConfig.max_id_chars, allow_unknown_only)
    _echo_all(predict_lines(scorer, texts, limits, all_classes))


def _echo_all(chunks: Iterable[str]) -> None:
    """Print chunks as they come; a reader that stops early (`| head`) ends the command quietly."""
    try:
        for chunk in chunks:
            click.echo(chunk)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # so the exit's flush cannot fail


@click.command("eval")
@click.option("--model", required=True, help="Model directory from `textcnn train`.")
@click.option("--data", required=True, help="Labelled Parquet file or folder.")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--output", default=None,
              help="Where to write the JSON report (default <model>/eval.json); the confusion-matrix PNG "
                   "goes beside it (eval_confusion.png).")
@click.option("--precision", default="fp32", show_default=True, type=click.Choice(("fp32", "int8")),
              help="int8: the accuracy `textcnn score --precision int8` would reach.")
@_s3_options
@_friendly_errors
def eval_cmd(model: str, data: str, text_column: str, label_column: str, output: str | None,
             precision: str) -> None:
    """Print accuracy, macro-F1, per-class precision/recall and the confusion matrix as JSON."""
    from textcnn import storage
    from textcnn.training.evaluate import evaluate_parquet
    from textcnn.training.plots import confusion_matrix
    report = evaluate_parquet(model, data, text_column, label_column, precision=precision)
    output = output or storage.join(model, "eval.json")
    text = json.dumps(report, indent=2, ensure_ascii=False)
    storage.write_text(output, text + "\n")
    click.echo(text)
    log.info("report written to %s", output)
    confusion_matrix(report, output.removesuffix(".json") + "_confusion.png")


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
    from textcnn.core.export import export
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
    from textcnn.core import artifacts
    from textcnn.core.explain import explain_texts
    from textcnn.core.model import TextCNN
    if k < 1:
        raise ConfigError(f"-k/--top: must be >= 1, got {k}")
    loaded = artifacts.load(model)
    if not isinstance(loaded.model, TextCNN):
        raise ConfigError(f"model: explanations need the PyTorch model directory; {model} is an export")
    for row in explain_texts(loaded.model, loaded.tokenizer, loaded.labels, list(texts), k):
        click.echo(json.dumps(row, ensure_ascii=False))


for _cmd in (train_cmd, tune_cmd, score_cmd, predict_cmd, eval_cmd, export_cmd, explain_cmd):
    main.add_command(_cmd)


def run_process(command: click.Command, **kwargs: Any) -> None:
    """Run command as the entry point of a process: Ctrl-C and SIGTERM stop it within seconds at any
    stage, exit status non-zero (see stopping.exit_now). However it ends, the heap is frozen first
    (gc.freeze): the interpreter's last collection, over every object torch and Ray created, took
    1-2 s of each process here after its work was done, and frozen objects are not collected."""
    stopping.install()
    try:
        command(**kwargs)
    finally:
        gc.freeze()
        if stopping.received():    # however the command ended (click reports Ctrl-C as "Aborted!", 1)
            stopping.exit_now()


def entry() -> None:
    """The `textcnn` console script and `python -m textcnn`."""
    run_process(main)


def run_job(command: click.Command) -> None:
    """Entry for jobs/*.py: the CLI command with logging configured."""
    _setup_logging(verbose=False)
    run_process(command, prog_name=f"python jobs/{command.name}.py")
