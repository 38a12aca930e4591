"""The Ray-free training core: schedule, early stopping, objectives, bf16, class weights."""

import numpy as np
import pytest
import torch

from textcnn.config import ModelConfig, TrainConfig
from textcnn.core.model import TextCNN
from textcnn.training.loop import (
    EarlyStopping,
    Objective,
    drop_tokens,
    evaluate,
    optimizer_and_schedule,
    train_epoch,
    warmup_decay,
)

pytestmark = pytest.mark.unit


def test_learning_rate_warms_up_then_decays_to_zero():
    f = warmup_decay(warmup_steps=4, total_steps=20)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and f(12) == pytest.approx(0.5) and f(20) == 0.0
    assert all(f(s) >= f(s + 1) for s in range(4, 25))


def test_early_stopping_counts_epochs_without_a_better_metric_and_replays_history():
    stopping = EarlyStopping(patience=2)
    for epoch, value in enumerate([0.7, 0.8, 0.79, 0.8]):
        stopping.update(epoch, value)
    assert stopping.stop and stopping.best_epoch == 1
    history = [{"epoch": e, "val_metric": v} for e, v in enumerate([0.7, 0.8, 0.79])]
    replayed = EarlyStopping.replay(2, history)
    assert not replayed.stop and replayed.bad_epochs == 1 and replayed.best == 0.8
    assert not EarlyStopping.replay(0, history + [{"epoch": 3, "val_metric": 0.1}] * 5).stop


def _data(multi_label: bool, rows: int = 256, seed: int = 0):
    """Token 2+c present means class c (multi-label: several classes per row)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(6, 40, size=(rows, 12))
    if multi_label:
        labels = (rng.random((rows, 3)) < 0.4).astype(np.float32)
        for c in range(3):
            ids[labels[:, c] > 0, c] = 2 + c
        y = torch.from_numpy(labels)
    else:
        labels = rng.integers(0, 3, size=rows)
        ids[np.arange(rows), 0] = 2 + labels
        y = torch.from_numpy(labels).long()
    return [{"ids": torch.from_numpy(ids[i:i + 32]).long(), "label": y[i:i + 32]} for i in range(0, rows, 32)]


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_both_heads_learn_under_fp32_and_bf16_autocast(multi_label, precision):
    torch.manual_seed(0)
    model = TextCNN(ModelConfig(vocab_size=40, num_classes=3, embed_dim=16, kernel_sizes=(1, 2), num_filters=8,
                                dropout=0.0, multi_label=multi_label, ngram_buckets=4096))
    config = TrainConfig(train="t", output="o", epochs=8, lr=2e-2, precision=precision)
    batches = _data(multi_label)
    optimizer, scheduler = optimizer_and_schedule(model, config, steps_per_epoch=len(batches))
    objective = Objective(multi_label)
    losses = [train_epoch(model, batches, optimizer, objective, scheduler, 1.0, precision) for _ in range(8)]
    assert losses[-1] < 0.5 * losses[0]
    loss, y_true, probs = evaluate(model, batches, objective, precision)
    assert probs.dtype == np.float32 and probs.shape == (256, 3)
    if multi_label:
        assert ((probs >= 0.5) == (y_true > 0.5)).mean() > 0.9
    else:
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        assert (probs.argmax(axis=1) == y_true).mean() > 0.9


def test_class_weights_scale_each_rows_loss_by_its_class():
    logits, labels = torch.zeros(2, 2), torch.tensor([0, 1])
    plain = Objective(False).loss(logits, labels, reduction="sum")
    weighted = Objective(False, [1.0, 3.0]).loss(logits, labels, reduction="sum")
    assert weighted.item() == pytest.approx(plain.item() * 2.0)      # (1 + 3) / 2


def test_a_seeded_run_is_repeatable():
    def once():
        torch.manual_seed(0)
        model = TextCNN(ModelConfig(vocab_size=40, num_classes=3, embed_dim=8, kernel_sizes=(2,), num_filters=4))
        config = TrainConfig(train="t", output="o", epochs=2)
        optimizer, scheduler = optimizer_and_schedule(model, config, steps_per_epoch=8)
        train_epoch(model, _data(False), optimizer, Objective(False), scheduler, 1.0)
        return model.head.weight.detach().clone()
    torch.testing.assert_close(once(), once(), rtol=0, atol=0)


def test_token_dropout_turns_about_its_share_of_real_tokens_into_unk_and_never_touches_padding():
    torch.manual_seed(0)
    ids = torch.randint(2, 50, (200, 40))
    ids[:, 30:] = 0                                          # right padding
    dropped = drop_tokens(ids, 0.25)
    real = ids[:, :30]
    hit = dropped[:, :30] == 1
    assert 0.2 < hit.float().mean().item() < 0.3
    assert torch.equal(dropped[:, :30][~hit], real[~hit])    # the rest as they were
    assert (dropped[:, 30:] == 0).all()
    assert drop_tokens(ids, 0.0) is ids


def test_training_with_token_dropout_still_learns():
    torch.manual_seed(0)
    model = TextCNN(ModelConfig(vocab_size=40, num_classes=3, embed_dim=16, kernel_sizes=(1, 2), num_filters=8,
                                dropout=0.0, ngram_buckets=4096))
    config = TrainConfig(train="t", output="o", epochs=8, lr=2e-2, token_dropout=0.1)
    batches = _data(False)
    optimizer, scheduler = optimizer_and_schedule(model, config, steps_per_epoch=len(batches))
    for _ in range(8):
        train_epoch(model, batches, optimizer, Objective(False), scheduler, 1.0, "fp32", config.token_dropout)
    _, y_true, probs = evaluate(model, batches, Objective(False))
    assert (probs.argmax(axis=1) == y_true).mean() > 0.9
