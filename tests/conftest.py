"""Shared fixtures: the shared datasets, and a tiny model directory built without Ray."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from textcnn import artifacts
from textcnn.config import ModelConfig, TokenizerConfig
from textcnn.model import TextCNN
from textcnn.text import VocabBuilder

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TEXTCNN_DATASETS", ROOT.parent / "shared" / "datasets"))


def dataset(name: str, split: str) -> str:
    path = DATASETS / name / f"{split}.parquet"
    if not path.exists():
        pytest.fail(f"shared dataset missing: {path} (set TEXTCNN_DATASETS)")
    return str(path)


@pytest.fixture
def tiny_model_dir(tmp_path: Path) -> str:
    """An untrained but complete model directory over a small English vocabulary."""
    builder = VocabBuilder(TokenizerConfig(max_length=16))
    builder.update(["a good film", "a bad film", "great fun", "dull and slow"])
    tokenizer = builder.build()
    config = ModelConfig(vocab_size=len(tokenizer), num_classes=2, embed_dim=8, num_filters=4)
    torch.manual_seed(0)
    model = TextCNN(config)
    out = str(tmp_path / "model")
    artifacts.save(out, model.state_dict(), config, tokenizer, ["neg", "pos"], {"note": "untrained"})
    return out
