"""The demo behind `make demo`: train on the bundled sample, evaluate, score, report.

    python jobs/demo.py [--workdir runs/demo] [--workers 2] [--actors 2] [--copies 40]
"""

import logging
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
def main(workdir: str, workers: int, actors: int, copies: int) -> None:
    from textcnn import demo
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    r = demo.run(workdir, workers, actors, copies)
    refit = f", then refit on all {r.fit.refit['rows']:,} rows" if r.fit.refit else ""
    click.echo(f"""
textcnn demo: Rotten Tomatoes snippets (bundled sample, {workers} Ray Train workers, {actors} scoring actors)
  trained in        {r.fit.seconds:.0f} s, best epoch {r.fit.metrics['epoch']}, val accuracy {r.fit.metrics['accuracy']:.3f}{refit}
  held-out test     accuracy {r.evaluation['accuracy']:.3f}, macro-F1 {r.evaluation['macro_f1']:.3f} ({r.evaluation['rows']} rows)
  scored held-out   {r.held_out.rows_scored} rows ({r.held_out.rows_dead} dead-lettered) in {r.held_out.seconds:.1f} s
  scored corpus     {r.corpus.rows_scored:,} rows in {r.corpus.seconds:.1f} s = {r.corpus.rows_per_second:,.0f} rows/s (actor start-up and commit included)
outputs:
  model             {r.fit.output}
  evaluation        {workdir}/eval.json
  held-out scores   {r.held_out.run_dir}  (read the files its _SUCCESS lists)
  corpus scores     {r.corpus.run_dir}""")


if __name__ == "__main__":
    run_process(main)
