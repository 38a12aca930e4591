import numpy as np
import pytest

from textcnn.metrics import classification_report

pytestmark = pytest.mark.unit


def test_report_on_a_hand_worked_example():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 2, 2])
    r = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert r["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["a"] == {"precision": 1.0, "recall": pytest.approx(2 / 3),
                                   "f1": pytest.approx(0.8), "support": 3}
    assert r["per_class"]["c"]["precision"] == 0.5
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_a_class_never_predicted_has_zero_precision_not_nan():
    r = classification_report(np.array([0, 1]), np.array([0, 0]), ["a", "b"])
    assert r["per_class"]["b"]["precision"] == 0.0 and r["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
