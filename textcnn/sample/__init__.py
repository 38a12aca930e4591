"""The bundled sample: Rotten Tomatoes snippets labelled fresh/rotten (train and held-out test).
Its paths live here, with no imports, so the Ray-free code (cuda_check) and the demo share them."""

from pathlib import Path

SAMPLE_DIR = Path(__file__).parent
SAMPLE_TRAIN, SAMPLE_TEST = str(SAMPLE_DIR / "train.parquet"), str(SAMPLE_DIR / "test.parquet")
SAMPLE_LABELS = ["fresh", "rotten"]
