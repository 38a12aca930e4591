"""The GPU node check, end to end under Ray, in one command: starts a local Ray with the
node's GPU and CPUs; trains on the bundled sample with `textcnn train --gpus` (1 worker); scores a
synthetic corpus with `textcnn score --gpus` (the CPU tokenize tasks on the other cores) while
sampling nvidia-smi; measures the host's tokenization ceiling (the tokenizer alone on every core);
and compares the run's scores with the CPU Scorer's on the same rows. Prints a report and writes
every figure as JSON (--out; default $OUT/gpu_check.json when $OUT is set). docs/gpu.md says how
to get Ray onto a GPU machine that lacks it.

    python jobs/gpu_check.py                         # on a GPU node: exit 1 at once without CUDA
    python jobs/gpu_check.py --rows 20000 --allow-cpu    # the dry run: every step on CPU
"""

import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from textcnn.cli import run_process  # noqa: E402

# The default corpus: 5M rows. On the 2-core dev machine (CPU actors) the bench's scoring run gives
# ~7,800 rows/s at 3M rows (docs/performance.md) and the tokenizer alone ~53,000 rows/s per core;
# making the corpus takes ~1 s per million rows. (This script's own dry run there, 20,000 rows under
# a load average of 6-20 from other sessions' tests, gave 350-460 rows/s, all fixed cost: Ray's
# join, the id pass, actor start.) On a 16-core GPU node the run cannot fall below 8x the 2-core CPU
# run (~55,000 rows/s, every core tokenizing or scoring), so 5M rows take at most ~90 s there; at
# the ~1M rows/s the GPU and 15 tokenizing cores could reach, ~5 s plus the run's fixed cost. With
# Ray's start (~15 s), training (~1 min) and the ceiling (~10 s) the check fits well inside 8
# minutes; --budget stops the scoring run in time however slow it turns out.
DEFAULT_ROWS = 5_000_000


@click.command()
@click.option("--rows", default=DEFAULT_ROWS, show_default=True, help="Rows of the synthetic corpus scored.")
@click.option("--allow-cpu", is_flag=True, help="Run every step on CPU where torch sees no CUDA (a dry run); "
              "GPU figures read 'no GPU'.")
@click.option("--out", default=None, help="Write every figure here as JSON; default: $OUT/gpu_check.json "
              "when $OUT is set.")
@click.option("--workdir", default="runs/gpu_check", show_default=True,
              help="Model, corpus (made once per size) and scores.")
@click.option("--model", default=None, help="Score this model directory instead of training one.")
@click.option("--epochs", default=6, show_default=True, help="Of the training run (`textcnn train --epochs`).")
@click.option("--refit/--no-refit", default=True, show_default=True, help="`textcnn train --refit/--no-refit`.")
@click.option("--score-arg", "score_args", multiple=True, metavar="ARG",
              help="An extra `textcnn score` argument (repeatable), e.g. --score-arg=--batch-size=16384.")
@click.option("--ceiling-seconds", default=5.0, show_default=True, help="Tokenizing time of the ceiling.")
@click.option("--parity-rows", default=4096, show_default=True, help="Rows scored again by the CPU Scorer.")
@click.option("--tolerance", default=2e-2, show_default=True,
              help="Largest probability difference that counts as equal (bf16 on the GPU, fp32 on CPU).")
@click.option("--budget", default=420, show_default=True,
              help="Seconds for the whole check: the scoring run is stopped when less than 40 s of it are left.")
@click.option("--train-timeout", default=300, show_default=True, help="Seconds before the training run is stopped.")
def main(rows: int, allow_cpu: bool, out: str | None, workdir: str, model: str | None, epochs: int, refit: bool,
         score_args: tuple[str, ...], ceiling_seconds: float, parity_rows: int, tolerance: float, budget: int,
         train_timeout: int) -> None:
    started = time.perf_counter()
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if gpu is None and not allow_cpu:
        raise click.ClickException("gpu_check: torch sees no CUDA device; --allow-cpu runs the check on CPU")
    logging.basicConfig(level=logging.WARNING)
    out = out or (os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else None)
    from benchmarks.gpu_check import Report
    report = Report()
    report.add(gpu=gpu, torch=torch.__version__, host_cpus=os.cpu_count(), rows=rows)
    try:
        failed = _check(report, started, use_gpu=gpu is not None, workdir=os.path.abspath(workdir), model=model,
                        epochs=epochs, refit=refit, score_args=list(score_args), ceiling_seconds=ceiling_seconds,
                        parity_rows=parity_rows, tolerance=tolerance, budget=budget, train_timeout=train_timeout)
    except Exception as e:               # the figures so far still get written; the traceback follows
        report.add(error=f"{type(e).__name__}: {e}")
        raise
    finally:
        report.add(total_seconds=round(time.perf_counter() - started, 1))
        click.echo("\n".join(report.lines()))
        if out:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(report.figures, indent=1))
            click.echo(f"figures written to {out}", err=True)
    if failed:
        raise click.ClickException(f"gpu_check: {failed}")


def _check(report, started: float, use_gpu: bool, workdir: str, model: str | None, epochs: int, refit: bool,
           score_args: list[str], ceiling_seconds: float, parity_rows: int, tolerance: float, budget: int,
           train_timeout: int) -> str:
    """Every step in turn, its figures added to report; returns what failed ('' when nothing did)."""
    import pyarrow.parquet as pq
    import ray

    from benchmarks import bench
    from benchmarks import gpu_check as check
    from textcnn import runtime
    from textcnn.sample import SAMPLE_TEST, SAMPLE_TRAIN
    from textcnn.scoring import runs
    os.makedirs(workdir, exist_ok=True)
    mode = "--gpus" if use_gpu else "CPU, --allow-cpu"
    report.add(train_mode=mode, score_mode=f"{mode}, 1 GPU actor" if use_gpu else mode)

    click.echo("starting a local Ray ...", err=True)
    runtime.ensure_ray()                 # a private local Ray with every CPU and GPU (or RAY_ADDRESS's cluster)
    have = ray.cluster_resources()
    address = ray.get_runtime_context().gcs_address
    report.add(ray=ray.__version__, ray_cpus=have.get("CPU", 0), ray_gpus=have.get("GPU", 0),
               ray_start_seconds=round(time.perf_counter() - started, 1))
    if use_gpu and have.get("GPU", 0) < 1:
        return "torch sees a GPU but Ray does not (CUDA_VISIBLE_DEVICES? nvidia-smi?)"

    if model:
        report.add(train_status="skipped (--model)", train_seconds=0.0)
    else:
        model = os.path.join(workdir, "model")
        click.echo(f"training on the bundled sample ({mode}) ...", err=True)
        args = ["train", "--train", SAMPLE_TRAIN, "--output", model, "--workers", "1", "--epochs", str(epochs),
                "--refit" if refit else "--no-refit"] + (["--gpus"] if use_gpu else [])
        train = check.cli(args, address, train_timeout, os.path.join(workdir, "train.log"))
        report.add(train_status=_status(train, train_timeout), train_seconds=round(train.seconds, 1),
                   train_line=train.last_line)
        if not train.ok:
            return f"training {_status(train, train_timeout)}"

    click.echo(f"making a corpus of {report.figures['rows']:,} rows ...", err=True)
    made = time.perf_counter()
    corpus = os.path.join(workdir, f"corpus-{report.figures['rows']}")
    corpus_rows = bench.corpus(corpus, report.figures["rows"])
    files = sorted(Path(corpus).glob("*.parquet"))
    report.add(rows=corpus_rows, corpus_files=len(files), corpus_seconds=round(time.perf_counter() - made, 1))

    click.echo(f"tokenization ceiling on {os.cpu_count()} processes ...", err=True)
    report.add(**check.tokenization_ceiling(model, str(files[0]), os.cpu_count() or 1, ceiling_seconds))

    output, run_id = os.path.join(workdir, "scores"), f"gpu-check-{int(time.time())}"
    timeout = max(60.0, budget - (time.perf_counter() - started) - 40)
    click.echo(f"scoring {corpus_rows:,} rows ({mode}; stopped after {timeout:.0f} s) ...", err=True)
    with bench.ActorMemory() as actors, check.GpuSampler() as gpu:
        score = check.cli(["score", "--model", model, "--input", corpus, "--output", output, "--run-id", run_id]
                          + (["--gpus"] if use_gpu else []) + score_args, address, timeout,
                          os.path.join(workdir, f"{run_id}.log"))
    report.add(score_status=_status(score, timeout), score_process_seconds=round(score.seconds, 1),
               score_line=score.last_line, driver_peak_bytes=score.driver_peak_bytes,
               actor_peak_private_bytes=actors.max_bytes, score_args=score_args)
    report.add(**(gpu.summary() if use_gpu else {"gpu_busy_mean_pct": check.NO_GPU,
                                                  "gpu_busy_mean_pct_while_scoring": check.NO_GPU,
                                                  "gpu_memory_peak_mib": check.NO_GPU}))
    if not score.ok:
        return f"scoring {_status(score, timeout)}"
    layout = runs.Layout(output, f"run={run_id}")
    manifest = runs.read_manifest(layout)
    rate = manifest.rows_per_second
    report.add(score_rows=manifest.input.rows, score_run_seconds=manifest.wall_seconds, rows_per_s=rate,
               rows_per_s_over_ceiling=round(rate / report.figures["tokenize_ceiling_rows_per_s"], 3),
               score_timings=manifest.timings)

    click.echo(f"scoring {parity_rows:,} of its rows again with the CPU Scorer ...", err=True)
    texts = dict(zip(*(pq.read_table(SAMPLE_TEST, columns=["id", "text"]).column(c).to_pylist()
                       for c in ("id", "text"))))
    report.add(**check.parity(model, layout.run_dir, texts, parity_rows, tolerance))
    return "" if report.figures.get("parity") == "equal" else f"scores differ from the CPU Scorer's: " \
        f"{report.figures.get('parity')}"


def _status(step, timeout: float) -> str:
    if step.timed_out:
        return f"stopped after {timeout:.0f} s"
    return "ok" if step.returncode == 0 else f"exit {step.returncode}"


if __name__ == "__main__":
    run_process(main)
