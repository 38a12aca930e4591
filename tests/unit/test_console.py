"""What a person sees: the line per epoch."""

import pytest

pytestmark = pytest.mark.unit


def test_an_epoch_is_one_line_counted_from_one():
    from textcnn.console import epoch_line
    select = {"epoch": 0, "train_loss": 0.51234, "val_loss": 0.4, "val_acc": 0.8, "val_macro_f1": 0.79,
              "epoch_seconds": 7.25, "stopped_early": False}
    assert epoch_line(select, "select", 6) == ("epoch 1/6: train loss 0.5123, val loss 0.4000, accuracy 0.8000, "
                                               "macro-F1 0.7900 (7.2 s)")
    assert epoch_line({**select, "epoch": 3, "stopped_early": True}, "select", 6).endswith("(7.2 s), stopping early")
    refit = {"epoch": 1, "train_loss": 0.2, "epoch_seconds": 3.0}
    assert epoch_line(refit, "refit", 4) == "refit epoch 2/4: train loss 0.2000 (3.0 s)"
