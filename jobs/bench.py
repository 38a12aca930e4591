"""Scoring benchmark: the bare ceiling against the scoring run end to end, memory at 1x and 10x the
corpus, and the tokenizer alone. Prints figures and which targets they meet; asserts nothing.

    python jobs/bench.py                       # local Ray, 100,000 rows and 1,000,000 rows
    RAY_AUTH_MODE=token ray job submit --address http://HEAD:8265 --working-dir . -- \
        python jobs/bench.py --rows 1000000 --actors 8 --gpus

The memory and bare-loop figures are read on the driver's machine: run it where the actors run
(one node) for the memory column to mean anything.
"""

import logging
import os
import sys
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir's textcnn


@click.command()
@click.option("--rows", default=100_000, show_default=True, help="Rows in the 1x corpus.")
@click.option("--scale", default=10, show_default=True, help="Also score a corpus this many times larger (0: skip).")
@click.option("--model", default=None, help="Model directory; default: an untrained default-sized model.")
@click.option("--actors", default=0, help="Scoring actors; default: as `textcnn score` (one per core or GPU).")
@click.option("--cpus-per-actor", default=0.5, show_default=True, help="Its torch threads follow.")
@click.option("--batch-size", default=512, show_default=True)
@click.option("--gpus", is_flag=True, help="One GPU per actor.")
@click.option("--workdir", default="runs/bench", show_default=True)
def main(rows: int, scale: int, model: str | None, actors: int, cpus_per_actor: float, batch_size: int,
         gpus: bool, workdir: str) -> None:
    from textcnn import bench, runtime
    from textcnn.config import ScoreConfig
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.makedirs(workdir, exist_ok=True)
    model = model or bench.untrained_model(os.path.join(workdir, "model"))
    runtime.ensure_ray()
    actors = actors or runtime.default_actors(gpus)
    sizes = [rows] + ([rows * scale] if scale > 1 else [])
    runs = []
    for n in sizes:
        folder = os.path.join(workdir, f"corpus-{n}")
        n = bench.corpus(folder, n)
        click.echo(f"scoring {n:,} rows with {actors} actor(s) x {cpus_per_actor:g} CPU ...", err=True)
        runs.append(bench.pipeline(ScoreConfig(
            model=model, input=folder, output=os.path.join(workdir, "scores"), run_id=f"bench-{n}",
            actors=actors, cpus_per_actor=cpus_per_actor, batch_size=batch_size, use_gpu=gpus)))
    first = os.path.join(workdir, f"corpus-{rows}")
    threads = int(runtime.ray.cluster_resources().get("CPU", 1))
    click.echo("bare loop and tokenizer ...", err=True)
    bare = bench.bare_loop(model, first, threads)
    tokens = bench.tokenizer_speed(model, first)
    _report(runs, bare, tokens, threads, actors, cpus_per_actor)


def _report(runs, bare, tokens, threads, actors, cpus_per_actor) -> None:
    from textcnn import bench
    one = runs[0]
    ratio = one.rows_per_second / bare
    mib = 2**20
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = [
        f"bare loop (1 process, {threads} torch threads)   {bare:10,.0f} rows/s",
        f"scoring run ({actors} actor(s) x {cpus_per_actor:g} CPU)       {one.rows_per_second:10,.0f} rows/s"
        f"  = {ratio:.2f} x bare   [target >= {bench.TARGET_RATIO}: {verdict(ratio >= bench.TARGET_RATIO)}]",
        f"tokenizer alone, 1 core                 {tokens:10,.0f} docs/s"
        f"  [target >= fastText's {bench.FASTTEXT_DOCS_PER_S:,}: {verdict(tokens >= bench.FASTTEXT_DOCS_PER_S)}]",
    ]
    for r in runs:
        lines.append(f"{r.rows:>11,} rows: {r.rows_per_second:8,.0f} rows/s = {r.rows_per_second / bare:.2f} x bare, "
                     f"{r.seconds:6.1f} s; peak memory: actor {r.actor_peak_bytes / mib:5.0f} MiB private, "
                     f"driver {r.driver_peak_bytes / mib:5.0f} MiB RSS")
    if len(runs) > 1 and runs[0].actor_peak_bytes:
        growth = runs[1].actor_peak_bytes / runs[0].actor_peak_bytes
        lines.append(f"actor peak at {runs[1].rows // runs[0].rows}x the corpus = {growth:.2f} x at 1x   "
                     f"[target <= {bench.TARGET_MEMORY}: {verdict(growth <= bench.TARGET_MEMORY)}]")
    click.echo("\n".join(lines))


if __name__ == "__main__":
    main()
