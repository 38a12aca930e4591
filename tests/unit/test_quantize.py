import numpy as np
import pytest
import torch
from torch import nn

from textcnn.config import ConfigError, ModelConfig, ScoreConfig
from textcnn.core.model import TextCNN
from textcnn.core.quantize import WindowLinear, int8
from textcnn.scoring.scorer import Scorer

pytestmark = pytest.mark.unit


def test_a_convolution_rewritten_over_windows_computes_the_same():
    torch.manual_seed(0)
    conv = nn.Conv1d(6, 5, 3)
    x = torch.randn(4, 6, 11)                                               # (B, E, L)
    torch.testing.assert_close(WindowLinear(conv)(x), conv(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="stride-1"):
        WindowLinear(nn.Conv1d(6, 5, 3, padding=1))


def test_int8_model_quantizes_every_convolution_and_keeps_the_scores_close():
    torch.manual_seed(0)
    model = TextCNN(ModelConfig(vocab_size=300, num_classes=3, embed_dim=32, num_filters=16,
                                kernel_sizes=(3, 4, 5), ngram_buckets=64)).eval()
    quantized = int8(model)
    kinds = {type(m).__module__ for conv in quantized.convs for m in conv.modules()}
    assert any("quantized" in k for k in kinds), kinds                     # really int8, not a copy
    assert isinstance(model.convs[0], nn.Conv1d)                            # the original is untouched
    ids = torch.randint(2, 300, (64, 20))
    with torch.inference_mode():
        p32 = torch.softmax(model(ids), 1)
        p8 = torch.softmax(quantized(ids), 1)
    assert (p8 - p32).abs().max() < 0.05
    assert (p8.argmax(1) == p32.argmax(1)).float().mean() >= 0.9


def test_scorer_precisions_agree_with_fp32(tiny_model_dir):
    texts = ["a good film", "dull and slow", "great fun a bad film", "a"] * 10
    fp32 = Scorer(tiny_model_dir, precision="fp32")
    ids = fp32.loaded.tokenizer.encode(texts)
    reference = fp32.probabilities(ids)
    assert np.array_equal(Scorer(tiny_model_dir).probabilities(ids), reference)   # auto on CPU is fp32
    for precision, tolerance in (("bf16", 0.02), ("int8", 0.05)):
        probs = Scorer(tiny_model_dir, precision=precision).probabilities(ids)
        assert probs.dtype == np.float32 and np.abs(probs - reference).max() < tolerance, precision
        assert not np.array_equal(probs, reference), precision             # the precision did change something


def test_int8_is_refused_with_gpus_and_with_explanations():
    base = dict(model="m", input="i", output="o", run_id="r", precision="int8")
    with pytest.raises(ConfigError, match="precision: int8 is for CPU"):
        ScoreConfig(**base, use_gpu=True)
    with pytest.raises(ConfigError, match="precision: explanations"):
        ScoreConfig(**base, explain=3)
    with pytest.raises(ConfigError, match="precision: must be one of"):
        ScoreConfig(**{**base, "precision": "fp8"})
