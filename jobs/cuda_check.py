"""CUDA check of the Ray-free core, for a machine with a GPU but perhaps without Ray: trains on the
bundled sample with bf16 autocast and with fp32, saves a model directory, scores it with the GPU
scorer against the CPU scorer, and measures the scorer's rows/s on the GPU by chunk size and
precision. Prints figures as JSON lines; asserts nothing except that CUDA is there.

    python jobs/cuda_check.py [--out cuda_check.json]
"""

import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import click  # noqa: E402

from textcnn.cli import run_process  # noqa: E402


def _emit(record: dict, sink: list) -> None:
    sink.append(record)
    print(json.dumps(record), flush=True)


@click.command()
@click.option("--epochs", default=4, show_default=True)
@click.option("--rows", default=400_000, show_default=True, help="Rows scored in each throughput figure.")
@click.option("--out", default=None, help="Also write the figures here as a JSON list.")
def main(epochs: int, rows: int, out: str | None) -> None:
    import numpy as np
    import torch

    from benchmarks import cuda_check

    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        raise SystemExit("cuda_check: torch sees no CUDA device")
    figures: list = []
    _emit({"device": torch.cuda.get_device_name(0), "torch": torch.__version__}, figures)
    data = cuda_check.sample_data()
    with tempfile.TemporaryDirectory() as d:
        for precision in ("auto", "fp32"):
            _emit(cuda_check.train_on_gpu(data, precision, epochs, f"{d}/{precision}"), figures)
        _emit(cuda_check.gpu_vs_cpu(f"{d}/auto", data.test_ids), figures)
        ids = np.resize(data.test_ids, (rows, data.test_ids.shape[1]))          # (rows, L)
        for precision in ("auto", "fp32"):
            for chunk in (256, 1024, 4096, 8192):
                _emit(cuda_check.scorer_rate(f"{d}/auto", ids, precision, chunk), figures)
        _emit(cuda_check.tokenize_and_score_rate(f"{d}/auto", data.test_texts, rows // 4), figures)
    if out:
        Path(out).write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    run_process(main)
