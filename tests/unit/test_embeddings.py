"""--embeddings: word2vec (text or binary) and GloVe files, frozen or fine-tuned starting vectors."""

import numpy as np
import pytest
import torch

from tests.vectors import write_vectors
from textcnn.config import ModelConfig, TokenizerConfig, TrainConfig
from textcnn.core.rows import DataError
from textcnn.core.text import VocabBuilder
from textcnn.training.embeddings import read_vectors
from textcnn.training.loop import Objective, optimizer_and_schedule, train_epoch
from textcnn.training.prepare import build_model

pytestmark = pytest.mark.unit


@pytest.fixture
def tokenizer():
    builder = VocabBuilder(TokenizerConfig(max_length=8, split="words"))
    builder.update(["the film was great", "the plot was dull"])
    return builder.build()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("header", [True, False])   # word2vec text (with "count dim") or GloVe
def test_known_words_get_their_vectors_and_the_rest_stay_nan(tmp_path, tokenizer, header):
    lines = ["The 1 2 3", "film 4 5 6", "zebra 7 8 9", "the 0 0 0"]
    uri = _write(tmp_path / "v.txt", (["4 3"] if header else []) + lines)
    vectors = read_vectors(uri, tokenizer)
    index = {t: i for i, t in enumerate(tokenizer.tokens)}
    assert vectors.shape == (len(tokenizer), 3)
    np.testing.assert_array_equal(vectors[index["the"]], [1, 2, 3])     # lowercased; the first spelling wins
    np.testing.assert_array_equal(vectors[index["film"]], [4, 5, 6])
    assert np.isnan(vectors[index["dull"]]).all() and np.isnan(vectors[0]).all()   # <pad> stays zero


def test_a_ragged_or_non_numeric_line_is_named(tmp_path, tokenizer):
    with pytest.raises(DataError, match=r"v.txt: line 3 has 2 values, the file's first vector 3"):
        read_vectors(_write(tmp_path / "v.txt", ["2 3", "the 1 2 3", "film 1 2"]), tokenizer)
    with pytest.raises(DataError, match=r"w.txt: line 1 has a value that is not a number"):
        read_vectors(_write(tmp_path / "w.txt", ["the 1 x 3"]), tokenizer)


@pytest.mark.parametrize("name", ["v.bin", "v.bin.gz", "v.txt.gz"])
def test_binary_and_gzipped_files_read_like_the_text_format(tmp_path, tokenizer, name):
    # float32s whose bytes hold a space and a newline, which a line or token split would cut at
    odd = np.frombuffer(b" \n \x3f", dtype="<f4")[0]
    records = {"The": [1, 2, odd], "film": [4, 5, 6], "中文": [7, 8, 9], "the": [0, 0, 0]}
    uri = write_vectors(tmp_path / name, records, binary=".bin" in name)
    vectors = read_vectors(uri, tokenizer)
    index = {t: i for i, t in enumerate(tokenizer.tokens)}
    assert vectors.shape == (len(tokenizer), 3)
    np.testing.assert_array_equal(vectors[index["the"]], np.asarray([1, 2, odd], dtype=np.float32))
    np.testing.assert_array_equal(vectors[index["film"]], [4, 5, 6])
    assert np.isnan(vectors[index["dull"]]).all()


def test_a_binary_file_shorter_than_its_header_is_named(tmp_path, tokenizer):
    uri = write_vectors(tmp_path / "v.bin", {"the": [1, 2, 3], "film": [4, 5, 6]}, binary=True, count=3)
    with pytest.raises(DataError, match=r"v.bin: the file ends in vector 3 of the 3 its header declares"):
        read_vectors(uri, tokenizer)


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_vectors_stay_as_read_and_fine_tuned_ones_move(tmp_path, tokenizer, freeze):
    vectors = read_vectors(_write(tmp_path / "v.txt", ["the 1 2 3 4", "film 5 6 7 8"]), tokenizer)
    config = TrainConfig(train="t", output="o", embeddings="v.txt", freeze_embeddings=freeze, weight_decay=0.1)
    model = build_model(ModelConfig(vocab_size=len(tokenizer), embed_dim=4, kernel_sizes=(1, 2), num_filters=4,
                                    ngram_buckets=4096),
                        config, vectors)
    start = model.embedding.weight.detach().clone()
    ids = torch.from_numpy(tokenizer.encode(["the film was great", "the plot was dull"] * 8)).long()
    optimizer, scheduler = optimizer_and_schedule(model, config, steps_per_epoch=1)
    train_epoch(model, [{"ids": ids, "label": torch.tensor([0, 1] * 8)}] * 5, optimizer, Objective(False), scheduler)
    after = model.embedding.weight.detach()
    index = {t: i for i, t in enumerate(tokenizer.tokens)}
    known, unknown = [index["the"], index["film"]], [index["plot"], index["dull"]]
    np.testing.assert_array_equal(start[known].numpy(), [[1, 2, 3, 4], [5, 6, 7, 8]])
    assert torch.equal(after[known], start[known]) == freeze                # frozen: exactly as read
    assert not torch.equal(after[unknown], start[unknown])                  # other words always learn


def test_words_missing_from_the_file_start_with_the_spread_of_the_files_vectors(tmp_path):
    """Kim (2014): the rest start uniform with the file's variance, not nn.Embedding's N(0, 1)."""
    builder = VocabBuilder(TokenizerConfig(max_length=8, split="words"))
    builder.update([f"w{i}" for i in range(400)])
    tokenizer = builder.build()
    rng = np.random.default_rng(0)
    lines = [f"w{i} " + " ".join(f"{x:.6f}" for x in rng.normal(0.0, 0.05, size=32)) for i in range(200)]
    vectors = read_vectors(_write(tmp_path / "v.txt", lines), tokenizer)
    model = build_model(ModelConfig(vocab_size=len(tokenizer), embed_dim=32, kernel_sizes=(1, 2), num_filters=4),
                        TrainConfig(train="t", output="o", embeddings="v.txt"), vectors)
    weight, found = model.embedding.weight.detach().numpy(), ~np.isnan(vectors[:, 0])
    np.testing.assert_array_equal(weight[found], vectors[found])
    rest = weight[~found][1:]                       # row 0 is <pad>
    assert (weight[0] == 0).all() and len(rest) >= 200
    assert 0.045 < rest.std() < 0.055 and np.abs(rest).max() <= np.sqrt(3) * 0.055
