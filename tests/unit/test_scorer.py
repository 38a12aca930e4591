import numpy as np
import pytest
import torch

from textcnn.score import PRED_LABEL, PRED_PROB, PROB_PREFIX, Scorer

pytestmark = pytest.mark.unit


def test_length_sorted_chunks_give_the_full_batch_probabilities(tiny_model_dir):
    scorer = Scorer(tiny_model_dir, id_column="id")
    texts = ["a good film"] * 3 + ["dull and slow " * 5, "", "great fun a bad film dull", "a"] * 40
    ids = scorer.loaded.tokenizer.encode(texts)                            # (B, 16)
    with torch.inference_mode():
        full = torch.softmax(scorer.loaded.model(torch.from_numpy(ids).long()), dim=1).numpy()
    np.testing.assert_allclose(scorer.probabilities(ids, chunk=7), full, rtol=1e-5, atol=1e-6)
    assert scorer.probabilities(ids[:0]).shape == (0, 2)


def test_call_keeps_ids_in_order_and_adds_label_and_class_probabilities(tiny_model_dir):
    scorer = Scorer(tiny_model_dir, id_column="doc")
    ids = scorer.loaded.tokenizer.encode(["a good film", "dull and slow", "great fun"])
    out = scorer({"doc": np.array(["x", "y", "z"], dtype=object), "ids": ids})
    assert list(out["doc"]) == ["x", "y", "z"]
    probs = np.stack([out[PROB_PREFIX + "neg"], out[PROB_PREFIX + "pos"]], axis=1)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert list(out[PRED_LABEL]) == [["neg", "pos"][i] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose(out[PRED_PROB], probs.max(axis=1))
