"""textcnn tune's search space: drawn embedding sizes, or the size of the pre-trained vectors."""

import pytest

from textcnn.config import ModelConfig, TrainConfig
from textcnn.training.tune import SPACE, search_space, trial_configs

pytestmark = pytest.mark.unit


def test_the_embedding_size_is_drawn_without_vectors_and_fixed_with_them():
    assert search_space(None) is SPACE and SPACE["embed_dim"].categories == [64, 128, 256]
    fixed = search_space(48)
    assert fixed["embed_dim"] == 48 and {k: v for k, v in fixed.items() if k != "embed_dim"} == {
        k: v for k, v in SPACE.items() if k != "embed_dim"}
    trial = {"embed_dim": fixed["embed_dim"], "kernel_sizes": (2, 3, 4), "num_filters": 64, "dropout": 0.3,
             "lr": 0.002}
    config, model = trial_configs(trial, TrainConfig(train="t", output="o", embeddings="v.bin"),
                                  ModelConfig(vocab_size=10, num_classes=2, embed_dim=48))
    assert model.embed_dim == 48 and model.kernel_sizes == (2, 3, 4) and config.lr == 0.002
    assert config.model is model and config.embeddings == "v.bin"
