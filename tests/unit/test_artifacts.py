import numpy as np
import pytest
import torch

from textcnn.core import artifacts

pytestmark = pytest.mark.unit


def test_model_directory_round_trip_loads_with_weights_only(tiny_model_dir):
    loaded = artifacts.load(tiny_model_dir)
    assert loaded.labels == ["neg", "pos"] and loaded.vocab_hash == loaded.tokenizer.hash()
    # the same weights file loads with weights_only=True, and the loaded model computes with it
    state = torch.load(f"{tiny_model_dir}/weights.pt", weights_only=True)
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, state[name])
    ids = torch.from_numpy(loaded.tokenizer.encode(["a good film", "dull"])).long()
    with torch.no_grad():
        probs = torch.softmax(loaded.model(ids), dim=1).numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert artifacts.verify(tiny_model_dir) == []


def test_tampered_weights_are_refused_naming_the_file(tiny_model_dir):
    with open(f"{tiny_model_dir}/weights.pt", "ab") as f:
        f.write(b"x")
    with pytest.raises(artifacts.ModelDirError, match="weights.pt: sha256"):
        artifacts.load(tiny_model_dir)


def test_missing_files_are_all_named(tiny_model_dir):
    import os
    os.remove(f"{tiny_model_dir}/vocab.json")
    os.remove(f"{tiny_model_dir}/labels.json")
    problems = artifacts.verify(tiny_model_dir)
    assert len(problems) == 2 and all("missing" in p for p in problems)
    assert any("vocab.json" in p for p in problems) and any("labels.json" in p for p in problems)
