import numpy as np
import pytest

from textcnn.training.metrics import classification_report

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


def test_roc_auc_counts_ordered_pairs_and_halves_ties():
    from textcnn.training.metrics import roc_auc
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert roc_auc(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_thresholds_are_tuned_per_class_and_the_multilabel_report_uses_them():
    from textcnn.training.metrics import report_for, tune_thresholds
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]], dtype=np.float32)
    probs = np.array([[0.30, 0.6], [0.35, 0.8], [0.1, 0.7], [0.05, 0.1]], dtype=np.float32)
    thresholds = tune_thresholds(y, probs)
    assert thresholds[0] == pytest.approx(0.15) and thresholds[1] == pytest.approx(0.65)  # lowest best F1
    report = report_for(y, probs, ["a", "b"], multi_label=True)
    assert report["micro_f1"] == 1.0 and report["accuracy"] == 1.0 and report["selection_metric"] == 1.0
    fixed = report_for(y, probs, ["a", "b"], multi_label=True, thresholds=[0.5, 0.5])
    assert fixed["per_class"]["a"]["recall"] == 0.0 and fixed["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
