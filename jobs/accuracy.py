"""The accuracy benchmark: `textcnn train` defaults on every shared labelled set, evaluated on its
test split, printed as a table beside fastText, TF-IDF + LR and the target (README, "Accuracy").

    python jobs/accuracy.py [--datasets ../shared/datasets] [--set rt_snippets ...] [--workers 2] [--seeds 3]

With --sizes, learning curves instead (issue 35, docs/learning-curves.md): the defaults, TF-IDF + LR and
fastText on stratified subsamples of each training split, once per seed, printed as a table of means
± standard errors, with curves.json, curves.md and curves.png in the workdir:

    python jobs/accuracy.py --sizes 500,1000,2000,4000,full --seeds 3 [--set rt_snippets ...]

Also submittable with `ray job submit` like the other jobs.
"""

import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the submitted working dir's textcnn

import click  # noqa: E402

from benchmarks import accuracy, curves  # noqa: E402
from textcnn.cli import run_process  # noqa: E402

# The full labelled sets (not shipped: the tests' subsets in tests/data are too small to benchmark).
DEFAULT_DATASETS = os.environ.get("TEXTCNN_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets")


@click.command()
@click.option("--datasets", default=str(DEFAULT_DATASETS), show_default=True,
              help="Folder of <set>/train.parquet, <set>/test.parquet and REFERENCE.md.")
@click.option("--set", "names", multiple=True, help="Only these sets (repeatable); default: every set.")
@click.option("--workers", default=2, show_default=True, help="Ray Train workers.")
@click.option("--seeds", default=1, show_default=True, type=click.IntRange(min=1),
              help="Train each set once per seed 0..N-1; the table gives the mean and each seed's result.")
@click.option("--sizes", default=None, metavar="N,N,...,full",
              help="Learning curves: train on stratified subsamples of these many rows ('full': the whole split), "
                   "beside TF-IDF + LR and fastText on the same rows.")
@click.option("--workdir", default=None, help="Where the models go; default: a temporary folder.")
def main(datasets: str, names: tuple[str, ...], workers: int, seeds: int, sizes: str | None,
         workdir: str | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    missing = accuracy.missing(datasets, names)
    if missing:
        click.echo(f"accuracy: the full labelled sets are not at {datasets} (no {missing}): pass --datasets DIR "
                   "or set TEXTCNN_DATASETS", err=True)
        sys.exit(1)
    refs = accuracy.references(datasets)
    workdir = workdir or tempfile.mkdtemp(prefix="textcnn-accuracy-")
    if sizes is not None:
        learning_curves(datasets, names or tuple(refs), sizes, seeds, workdir, workers)
        return
    rows = [accuracy.mean_row([accuracy.run_set(datasets, name, refs[name], workdir, workers, seed)
                               for seed in range(seeds)]) for name in (names or refs)]
    click.echo(accuracy.table(rows))
    click.echo(f"{sum(r.met for r in rows)} of {len(rows)} targets met; models in {workdir}")


def learning_curves(datasets: str, names: tuple[str, ...], sizes: str, seeds: int, workdir: str, workers: int) -> None:
    try:
        wanted = curves.parse_sizes(sizes)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--sizes") from None
    try:
        import sklearn  # noqa: F401
    except ImportError:
        click.echo("accuracy: --sizes needs scikit-learn for TF-IDF + LR: pip install -e '.[bench]'", err=True)
        sys.exit(1)
    os.makedirs(workdir, exist_ok=True)
    rows = curves.summarise(curves.run(datasets, names, wanted, seeds, workdir, workers))
    click.echo(curves.curve_table(rows))
    if not curves.fasttext_available():
        click.echo("fastText: not measured (the fasttext-wheel of the `bench` extra is not installed)")
    behind = [f"{r.name} {r.size}" for r in rows if r.verdict != "yes"]
    click.echo(f"CNN above TF-IDF + LR by more than one standard error at {len(rows) - len(behind)} of {len(rows)} "
               f"points{'; not yet: ' + ', '.join(behind) if behind else ''}; figures in {workdir} "
               "(curves.json, curves.md, curves.png)")


if __name__ == "__main__":
    run_process(main)
