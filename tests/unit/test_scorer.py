import numpy as np
import pyarrow as pa
import pytest
import torch

from textcnn.scoring.scorer import Scorer
from textcnn.scoring.stages import PRED_LABEL, PRED_PROB, PROB_PREFIX, tokens_of

pytestmark = pytest.mark.unit


def test_length_sorted_chunks_give_the_full_batch_probabilities(tiny_model_dir):
    scorer = Scorer(tiny_model_dir)
    texts = ["a good film"] * 3 + ["dull and slow " * 5, "", "great fun a bad film dull", "a"] * 40
    ids = scorer.loaded.tokenizer.encode(texts)                            # (B, 16)
    with torch.inference_mode():
        full = torch.softmax(scorer.loaded.model(torch.from_numpy(ids).long()), dim=1).numpy()
    np.testing.assert_allclose(scorer.probabilities(ids, chunk=7), full, rtol=1e-5, atol=1e-6)
    assert scorer.probabilities(ids[:0]).shape == (0, 2)


def test_call_scores_good_rows_and_passes_bad_rows_through_with_null_scores(tiny_model_dir):
    scorer = Scorer(tiny_model_dir)
    tokens = scorer.loaded.tokenizer.encode(["a good film", "dull and slow", "great fun"])   # (3, 16)
    batch = pa.table({"id": ["x", "y", "z"], "reason": [None, "text_null", None],
                      "tokens": pa.FixedSizeListArray.from_arrays(pa.array(tokens.ravel()), 16)})
    np.testing.assert_array_equal(tokens_of(batch.slice(1)), tokens[1:])
    out = scorer(batch)
    assert out["id"].to_pylist() == ["x", "y", "z"] and "tokens" not in out.column_names
    assert out[PRED_LABEL][1].as_py() is None and out[PRED_PROB][1].as_py() is None
    probs = np.stack([out[PROB_PREFIX + "neg"].to_numpy(zero_copy_only=False),
                      out[PROB_PREFIX + "pos"].to_numpy(zero_copy_only=False)], axis=1)[[0, 2]]
    np.testing.assert_allclose(probs, scorer.probabilities(tokens[[0, 2]]), rtol=1e-6)
    assert [out[PRED_LABEL][i].as_py() for i in (0, 2)] == [["neg", "pos"][i] for i in probs.argmax(axis=1)]


def test_the_scorer_and_its_stages_import_without_ray():
    # the GPU check (jobs/cuda_check.py) runs where Ray may not be installed; the core must not need it
    import subprocess
    import sys
    code = ("import sys; sys.modules['ray'] = None\n"
            "import textcnn.scoring.scorer, textcnn.scoring.stages, textcnn.training.loop, benchmarks.cuda_check")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
