"""--embeddings from object storage: word2vec binary (gzipped) and text files on the S3 endpoint."""

import numpy as np
import pytest

from tests.vectors import write_vectors
from textcnn.config import TokenizerConfig
from textcnn.core.text import VocabBuilder
from textcnn.storage import StorageError
from textcnn.training.embeddings import read_vectors

pytestmark = pytest.mark.integration


def test_binary_and_text_vectors_read_from_s3_alike(s3, tmp_path):
    builder = VocabBuilder(TokenizerConfig(max_length=8, split="words"))
    builder.update(["the film was great", "the plot was dull"])
    tokenizer = builder.build()
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=5).astype("<f4") for w in ["the", "film", "plot", "zebra"]}
    bucket = s3.bucket("textcnn-vectors")
    for name in ("v.bin.gz", "v.txt"):
        s3.upload(write_vectors(tmp_path / name, vectors, binary=".bin" in name), f"{bucket}/{name}")
    binary, text = read_vectors(f"{bucket}/v.bin.gz", tokenizer), read_vectors(f"{bucket}/v.txt", tokenizer)
    index = {t: i for i, t in enumerate(tokenizer.tokens)}
    for word in ("the", "film", "plot"):
        np.testing.assert_array_equal(binary[index[word]], vectors[word])
    np.testing.assert_array_equal(binary, text)                # NaN rows too: same words found
    with pytest.raises(StorageError, match=f"{bucket}/nope.bin"):
        read_vectors(f"{bucket}/nope.bin", tokenizer)
