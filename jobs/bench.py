"""Scoring benchmark: the bare ceiling against the scoring run end to end at 1x and 10x the corpus,
memory at both, the 1x corpus as many small files, the tokenizer against fastText, and int8 against
fp32. Prints figures and which targets they meet; asserts nothing.

    python jobs/bench.py                       # local Ray: 300,000 rows, then 3,000,000
    RAY_AUTH_MODE=token ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/bench.py --rows 1000000 --actors 8 --gpus

The memory and bare-loop figures are read on the driver's machine: run it where the actors run
(one node) for the memory column to mean anything.

    python jobs/bench.py --driver-memory [--driver-memory-rows 1000000,3000000]

scores synthetic corpora (16-character ids, duplicates across files) with `textcnn score` processes
instead, and prints the driver's peak RSS at each size, its slope in bytes per row, the id pass's
share of the run, and rows/s against the old driver path (bench.DRIVER_IDS_COMMIT) run beside it.
"""

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir's textcnn

import click  # noqa: E402

from textcnn.cli import run_process  # noqa: E402


@click.command()
@click.option("--rows", default=300_000, show_default=True, help="Rows in the 1x corpus.")
@click.option("--scale", default=10, show_default=True, help="Also score a corpus this many times larger (0: skip).")
@click.option("--model", default=None, help="Model directory; default: one trained on the bundled sample.")
@click.option("--actors", default=0, help="Scoring actors; default: as `textcnn score` (one per core or GPU).")
@click.option("--cpus-per-actor", default=0.5, show_default=True, help="Its torch threads follow.")
@click.option("--batch-size", default=0, show_default=True, help="0: as `textcnn score` (4096 on CPU, 8192 on GPU).")
@click.option("--gpus", is_flag=True, help="One GPU per actor.")
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(("auto", "fp32", "bf16", "int8")), help="Of the scoring runs.")
@click.option("--input", "input_dir", default=None,
              help="A local folder of Parquet to score instead of a corpus made from the sample (no 10x run).")
@click.option("--id-column", default="id", show_default=True)
@click.option("--text-column", default="text", show_default=True)
@click.option("--labelled", default=None,
              help="Parquet with text and label columns for int8's accuracy change; default: the bundled "
                   "held-out sample.")
@click.option("--small-files", default=128, show_default=True,
              help="Also score the 1x corpus as files of this many rows (0: skip).")
@click.option("--workdir", default="runs/bench", show_default=True)
@click.option("--driver-memory", is_flag=True, help="Only the driver's memory against the corpus size.")
@click.option("--driver-memory-rows", default="1000000,3000000,10000000", show_default=True,
              help="Corpus sizes of --driver-memory, comma-separated.")
@click.option("--driver-memory-old-rows", default=3_000_000, show_default=True,
              help="Also score this size with the old driver path, for the rows/s ratio (0: skip).")
def main(rows: int, scale: int, model: str | None, actors: int, cpus_per_actor: float, batch_size: int,
         gpus: bool, precision: str, input_dir: str | None, id_column: str, text_column: str,
         labelled: str | None, small_files: int, workdir: str, driver_memory: bool, driver_memory_rows: str,
         driver_memory_old_rows: int) -> None:
    from benchmarks import bench
    from textcnn import runtime
    from textcnn.config import ScoreConfig
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.makedirs(workdir, exist_ok=True)
    if driver_memory:
        sizes = [int(n) for n in driver_memory_rows.split(",") if n.strip()]
        args = [f"--actors={actors}", f"--cpus-per-actor={cpus_per_actor}", f"--batch-size={batch_size}"]
        click.echo("\n".join(_driver_memory(workdir, sizes, driver_memory_old_rows, args)))
        return
    runtime.ensure_ray()
    threads = int(runtime.ray.cluster_resources().get("CPU", 1))
    if not model:
        click.echo("training a model on the bundled sample ...", err=True)
        model = bench.trained_model(os.path.join(workdir, "model"), workers=min(2, threads))
    actors = actors or runtime.default_actors(gpus)
    if input_dir:
        folders, sizes = [input_dir], [bench.rows_in(input_dir)]
    else:
        wanted = [rows] + ([rows * scale] if scale > 1 else [])
        folders = [os.path.join(workdir, f"corpus-{n}") for n in wanted]
        sizes = [bench.corpus(folder, n) for folder, n in zip(folders, wanted)]
    columns = (id_column, text_column)
    # The one-process figures first: they also give the cluster time to settle after training.
    click.echo("bare loop, tokenizer and int8 ...", err=True)
    bare = bench.bare_loop(model, folders[0], threads, precision, columns=columns, use_gpu=gpus)
    tokens = bench.tokenizer_speed(model, folders[0], text_column=text_column)
    quantized = bench.int8_report(model, folders[0], labelled, columns=columns)

    def scored(folder: str, run_id: str) -> bench.PipelineRun:
        return bench.pipeline(ScoreConfig(
            model=model, input=folder, output=os.path.join(workdir, "scores"), run_id=run_id,
            id_column=id_column, text_column=text_column, actors=actors, cpus_per_actor=cpus_per_actor,
            batch_size=batch_size, use_gpu=gpus, precision=precision))

    runs = []
    for folder, n in zip(folders, sizes):
        click.echo(f"scoring {n:,} rows with {actors} actor(s) x {cpus_per_actor:g} CPU ...", err=True)
        runs.append(scored(folder, f"bench-{n}"))
    lines = _report(runs, bare, tokens, quantized, threads, actors, cpus_per_actor)
    if small_files and not input_dir:
        folder = os.path.join(workdir, f"corpus-{sizes[0]}-in-{small_files}")
        bench.recut(folders[0], folder, small_files)
        click.echo(f"scoring the {sizes[0]:,} rows as files of {small_files} rows ...", err=True)
        lines.append(_small_files_line(runs[0], scored(folder, f"bench-{sizes[0]}-in-{small_files}"), small_files))
    click.echo("\n".join(lines))


def _driver_memory(workdir: str, sizes: list[int], old_rows: int, args: list[str]) -> list[str]:
    """The new path at each size, the old driver path at old_rows (same corpus), in one invocation."""
    from benchmarks import bench
    model = bench.untrained_model(os.path.abspath(os.path.join(workdir, "model-untrained")))
    repo, out = str(Path(__file__).resolve().parents[1]), os.path.join(workdir, "driver-memory-scores")
    old_code = bench.driver_ids_code(workdir, repo) if old_rows else None
    new, old = [], None
    for n in sorted(set(sizes) | ({old_rows} if old_code else set())):
        folder = os.path.abspath(os.path.join(workdir, f"synthetic-{n}"))
        click.echo(f"making / scoring {n:,} synthetic rows ...", err=True)
        bench.synthetic_corpus(folder, n)
        run_args = ["--model", model, "--input", folder, *args]
        if n in sizes:
            new.append(bench.driver_run(run_args, out, f"new-{n}", repo))
            click.echo(_driver_line("id pass on the cluster", new[-1]), err=True)
        if old_code and n == old_rows:
            old = bench.driver_run(run_args, out, f"old-{n}", old_code)
            click.echo(_driver_line(f"old driver path ({bench.DRIVER_IDS_COMMIT})", old), err=True)
    return _driver_report(new, old)


def _driver_line(what: str, run) -> str:
    share = f", id pass {run.id_pass_seconds:.1f} s = {run.id_pass_seconds / run.seconds:.1%} of it" \
        if run.id_pass_seconds is not None else ""
    return (f"{what:>30}: {run.rows:>11,} rows: driver peak {run.driver_peak_bytes / 2**20:6.0f} MiB RSS "
            f"({run.driver_private_bytes / 2**20:.0f} MiB private), "
            f"{run.rows_per_second:7,.0f} rows/s, {run.seconds:7.1f} s{share}")


def _driver_report(new: list, old) -> list[str]:
    from benchmarks import bench
    lines = [_driver_line("id pass on the cluster", r) for r in new]
    slope = bench.slope(new)
    lines.append(f"driver slope: {slope:.2f} bytes/row   [target <= 2: {_verdict(slope <= 2)}]; private memory "
                 f"(RssAnon): {bench.slope(new, private=True):.2f} bytes/row")
    last = new[-1]
    share = last.id_pass_seconds / last.seconds
    lines.append(f"id pass at {last.rows:,} rows: {share:.1%} of the run   [target <= 15%: {_verdict(share <= 0.15)}]")
    if old is not None:
        lines.append(_driver_line(f"old driver path ({bench.DRIVER_IDS_COMMIT})", old))
        same = next((r for r in new if r.rows == old.rows), None)
        if same is not None:
            ratio = same.rows_per_second / old.rows_per_second
            lines.append(f"rows/s at {old.rows:,} rows, new / old = {ratio:.2f}   "
                         f"[target >= 1: {_verdict(ratio >= 1)}]")
    return lines


def _small_files_line(one, small, rows_per_file: int) -> str:
    def layout(run) -> str:
        files, units = len(run.manifest.input.files), run.manifest.resume.units
        return f"{files:,} file{'s' * (files != 1)}, {units:,} unit{'s' * (units != 1)}"
    return (f"the {small.rows:,} rows as files of {rows_per_file} rows ({layout(small)}): "
            f"{small.rows_per_second:8,.0f} rows/s = {small.rows_per_second / one.rows_per_second:.2f} x "
            f"the 1x run ({layout(one)})")


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _report(runs, bare, tokens, quantized, threads, actors, cpus_per_actor) -> list[str]:
    from benchmarks import bench
    one, ratio, mib = runs[0], runs[0].rows_per_second / bare, 2**20
    lines = [f"bare loop (1 process, {threads} torch threads)   {bare:10,.0f} rows/s",
             f"scoring run ({actors} actor(s) x {cpus_per_actor:g} CPU)       {one.rows_per_second:10,.0f} rows/s"
             f"  = {ratio:.2f} x bare   [target >= {bench.TARGET_RATIO}: {_verdict(ratio >= bench.TARGET_RATIO)}]"]
    for r in runs:
        lines.append(f"{r.rows:>11,} rows: {r.rows_per_second:8,.0f} rows/s = {r.rows_per_second / bare:.2f} x bare, "
                     f"{r.seconds:6.1f} s; peak memory: actor {r.actor_peak_bytes / mib:5.0f} MiB private, "
                     f"driver {r.driver_peak_bytes / mib:5.0f} MiB RSS (during the run)")
    if len(runs) > 1:
        split = bench.marginal(runs[0], runs[1])
        lines.append("the run once started: corpora too small to tell it from the fixed cost" if split is None else
                     f"the run once started: {split[0]:8,.0f} rows/s = {split[0] / bare:.2f} x bare; its fixed cost "
                     f"{split[1]:.1f} s (actor start: process, torch import, model load; plan; commit)")
        if runs[0].actor_peak_bytes:
            growth = runs[1].actor_peak_bytes / runs[0].actor_peak_bytes
            lines.append(f"actor peak at {runs[1].rows // runs[0].rows}x the corpus = {growth:.2f} x at 1x   "
                         f"[target <= {bench.TARGET_MEMORY}: {_verdict(growth <= bench.TARGET_MEMORY)}]")
    last = runs[-1]
    lines.append(f"CPU during the {last.rows:,}-row run ({threads} cores x {last.seconds:.0f} s): " + ", ".join(
        f"{group} {seconds / (threads * last.seconds):.0%}" for group, seconds in
        sorted(last.cpu.items(), key=lambda gs: -gs[1]) if seconds > 0.005 * threads * last.seconds))
    lines.append(f"tokenizer alone, 1 core                 {tokens.ours:10,.0f} docs/s")
    if tokens.fasttext:
        share = tokens.ours / tokens.fasttext
        lines.append(f"fastText predict, same texts, 1 core    {tokens.fasttext:10,.0f} docs/s"
                     f"  tokenizer = {share:.2f} x fastText   [target >= 1: {_verdict(share >= 1)}]")
    else:
        lines.append(f"fastText not installed (pip install '.[bench]'): REFERENCE.md gives {bench.FASTTEXT_REFERENCE}"
                     f" docs/s; not measured in this run")
    q = quantized
    gain = q.int8_rows_per_s / q.fp32_rows_per_s
    accuracy = ("no labelled data with the model's classes (--labelled)" if q.fp32_accuracy is None else
                f"held-out accuracy {q.fp32_accuracy:.4f} (fp32) -> {q.int8_accuracy:.4f} (int8), "
                f"{q.int8_accuracy - q.fp32_accuracy:+.4f}")
    lines.append(f"int8, 1 torch thread {q.int8_rows_per_s:8,.0f} rows/s = {gain:.2f} x fp32 "
                 f"({q.fp32_rows_per_s:,.0f}); {accuracy}")
    return lines


if __name__ == "__main__":
    run_process(main)
