"""The demo behind `make demo`: train on the bundled sample, evaluate, score, report.

    python jobs/demo.py [--workdir runs/demo] [--workers 2] [--actors 2] [--copies 40]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from textcnn.cli import run_process  # noqa: E402


@click.command()
@click.option("--workdir", default="runs/demo", show_default=True, help="Where outputs go.")
@click.option("--workers", default=2, show_default=True, help="Ray Train workers.")
@click.option("--actors", default=2, show_default=True, help="Scoring actors.")
@click.option("--copies", default=40, show_default=True, help="Copies of the held-out set in the corpus.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging, and Ray's own logs.")
def main(workdir: str, workers: int, actors: int, copies: int, verbose: bool) -> None:
    from textcnn import console, demo
    console.setup(verbose)
    r = demo.run(workdir, workers, actors, copies)
    fit, ev, held, corpus = r.fit, r.evaluation, r.held_out, r.corpus
    refit = f", then refit on all {fit.refit['rows']:,} rows" if fit.refit else ""
    val = fit.metrics['accuracy']
    click.echo(f"""
textcnn demo: Rotten Tomatoes snippets (bundled sample, {workers} Ray Train workers, {actors} scoring actors)
  trained in        {fit.seconds:.0f} s, best epoch {fit.metrics['epoch'] + 1}, val accuracy {val:.3f}{refit}
  held-out test     accuracy {ev['accuracy']:.3f}, macro-F1 {ev['macro_f1']:.3f} ({ev['rows']} rows)
  scored held-out   {held.rows_scored} rows ({held.rows_dead} dead-lettered) in {held.seconds:.1f} s
  scored corpus     {corpus.rows_scored:,} rows in {corpus.seconds:.1f} s = {corpus.rows_per_second:,.0f} rows/s \
(actor start-up and commit included)
outputs:
  model             {fit.output}
  evaluation        {workdir}/eval.json
  scores            {held.run_dir}, {corpus.run_dir}
                    (one dataset: read {workdir}/output/scores with pandas, polars, DuckDB, ...)""")


if __name__ == "__main__":
    run_process(main)
