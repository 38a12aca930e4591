import json
import os

import numpy as np
import pytest
import torch

from textcnn.core import artifacts
from textcnn.core.export import ExportedModel, ExportError, export, parity_sample
from textcnn.core.predict import probabilities

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_an_export_is_a_model_directory_that_scores_like_pytorch(tiny_model_dir, tmp_path, fmt):
    out = str(tmp_path / fmt)
    parity = export(tiny_model_dir, fmt, out)
    assert parity["max_abs_prob_diff"] <= 1e-4 and parity["rows"] == 512
    assert artifacts.verify(out) == []
    original, exported = artifacts.load(tiny_model_dir), artifacts.load(out)
    assert isinstance(exported.model, ExportedModel) and exported.labels == original.labels
    assert exported.vocab_hash == original.vocab_hash
    config = json.load(open(os.path.join(out, "config.json")))
    assert config["format"] == fmt and config["source_model_version"] == original.version
    ids = original.tokenizer.encode(["a good film", "dull", "", "great fun and a bad film dull and slow"])
    cpu = torch.device("cpu")
    np.testing.assert_allclose(probabilities(exported.model, ids, 2, cpu),
                               probabilities(original.model, ids, 2, cpu), atol=1e-4)
    with open(os.path.join(out, config["weights_file"]), "ab") as f:
        f.write(b"x")
    assert any("sha256" in p for p in artifacts.verify(out))


def test_an_export_outside_the_tolerance_fails_and_writes_nothing(tiny_model_dir, tmp_path):
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export(tiny_model_dir, "torchscript", str(tmp_path / "ts"), tolerance=-1.0)
    assert not (tmp_path / "ts").exists()


def test_the_parity_sample_covers_every_length():
    ids = parity_sample(vocab_size=50, max_length=16, rows=64)
    assert sorted(set((ids != 0).sum(axis=1))) == list(range(1, 17))
    assert ids.max() < 50 and (ids[ids != 0] >= 2).all()
