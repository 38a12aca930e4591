"""Explanations on models trained (Ray-free, in seconds) on synthetic sets where one n-gram decides."""

import numpy as np
import pytest
import torch

from textcnn.config import ModelConfig, TokenizerConfig
from textcnn.core.explain import join_tokens, top_ngrams, window_contributions
from textcnn.core.model import TextCNN
from textcnn.core.text import VocabBuilder, split
from textcnn.training.loop import Objective, train_epoch

pytestmark = pytest.mark.unit


def _synthetic(fillers, planted, rng, rows=1500, sep=" "):
    """Label 1 iff the planted n-gram occurs; its parts also occur apart in label-0 rows."""
    texts, labels = [], []
    for i in range(rows):
        words = list(rng.choice(fillers, size=rng.integers(6, 14)))
        label = i % 2
        if label:
            at = rng.integers(0, len(words))
            words[at:at] = planted
        else:                                  # the parts, never adjacent in order
            words.insert(0, planted[-1])
            words.append(planted[0])
        texts.append(sep.join(words))
        labels.append(label)
    return texts, np.array(labels)


def _train(texts, labels):
    builder = VocabBuilder(TokenizerConfig(max_length=24, split="words"))
    builder.update(texts)
    tokenizer = builder.build()
    torch.manual_seed(0)
    model = TextCNN(ModelConfig(vocab_size=len(tokenizer), embed_dim=16, kernel_sizes=(2, 3), num_filters=16,
                                dropout=0.1, ngram_buckets=4096))
    ids, y = torch.from_numpy(tokenizer.encode(texts)).long(), torch.from_numpy(labels).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(6):
        train_epoch(model, [{"ids": ids[i:i + 64], "label": y[i:i + 64]} for i in range(0, len(y), 64)], optimizer,
                    Objective(multi_label=False))
    model.eval()
    with torch.inference_mode():
        accuracy = (model(ids).argmax(1) == y).float().mean().item()
    assert accuracy > 0.97
    return model, tokenizer


@pytest.mark.parametrize("fillers, planted, sep", [
    ("the a of film and to is was it plot actor scene very zebra crossing".split(), ["zebra", "crossing"], " "),
    (list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会"),
     list("好极了"), ""),
])
def test_the_planted_ngram_is_reported_first(fillers, planted, sep):
    rng = np.random.default_rng(1)
    texts, labels = _synthetic(fillers, planted, rng, sep=sep)
    model, tokenizer = _train(texts, labels)
    probe = sep.join(["the", "film", *planted, "was", "it"] if sep else list("我不人") + planted + list("在他"))
    ids = tokenizer.encode([probe])
    with torch.inference_mode():
        target = model(torch.from_numpy(ids).long()).argmax(1).numpy()
    assert target[0] == 1
    top = top_ngrams(model, ids, target, [split(probe)], k=3)[0]
    assert len(top) == 3 and top[0].contribution >= top[1].contribution >= top[2].contribution
    # the top window covers the decisive pair: both planted tokens, or two of the three
    at = split(probe).index(planted[0])
    overlap = min(top[0].start + top[0].width, at + len(planted)) - max(top[0].start, at)
    assert overlap >= 2, top


def test_contributions_and_bias_add_up_to_the_logit_margin(tiny_model_dir):
    from textcnn.core import artifacts
    loaded = artifacts.load(tiny_model_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        loaded.model.ngrams.weight.normal_()              # the n-gram branch's terms count too
    ids = torch.from_numpy(loaded.tokenizer.encode(["a good film and great fun", "dull"])).long()
    target = torch.tensor([1, 0])
    total = np.stack([w.sum(axis=1) for w in window_contributions(loaded.model, ids, target)]).sum(axis=0)
    with torch.inference_mode():
        logits = loaded.model(ids)
    bias = loaded.model.head.bias.detach()
    margin = logits[[0, 1], target] - logits[[0, 1], 1 - target] - (bias[target] - bias[1 - target])
    np.testing.assert_allclose(total, margin.numpy(), rtol=1e-4, atol=1e-5)


def test_cjk_characters_join_without_spaces_and_words_with():
    assert join_tokens(["好", "极", "了"]) == "好极了"
    assert join_tokens(["a", "good", "好", "film"]) == "a good 好 film"
    assert join_tokens(list("ip 6好"), chars=True) == "ip 6好"        # the chars split keeps its spaces
