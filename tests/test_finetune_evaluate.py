"""Validation metrics against hand-computed examples, and the two figures."""

import numpy as np
import pytest

from keras_notes.finetune import evaluate

# Six images, three classes; worked by hand below.
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    expected = [[2, 1, 0],   # class 0: two right, one taken for class 1
                [0, 1, 1],   # class 1: one right, one taken for class 2
                [0, 0, 1]]   # class 2: right
    assert evaluate.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == expected


def test_per_class_metrics_match_hand_arithmetic():
    precision, recall, f1, support = evaluate.per_class_metrics(evaluate.confusion_matrix(Y_TRUE, Y_PRED, 3))
    np.testing.assert_allclose(precision, [2 / 2, 1 / (1 + 1), 1 / (1 + 1)])
    np.testing.assert_allclose(recall, [2 / 3, 1 / 2, 1 / 1])
    f1_class0 = 2 * 1.0 * (2 / 3) / (1.0 + 2 / 3)  # 0.8
    f1_class2 = 2 * 0.5 * 1.0 / (0.5 + 1.0)  # 2/3
    np.testing.assert_allclose(f1, [f1_class0, 0.5, f1_class2])
    assert support.tolist() == [3, 2, 1]


def test_a_class_never_predicted_or_absent_scores_zero_not_nan():
    # Class 2 is never predicted (precision 0/0) and class 3 never occurs (recall 0/0).
    precision, recall, f1, support = evaluate.per_class_metrics(
        evaluate.confusion_matrix([0, 1, 2], [0, 1, 1], 4))
    np.testing.assert_allclose(precision, [1, 1 / 2, 0, 0])
    np.testing.assert_allclose(recall, [1, 1, 0, 0])
    # f1 = 2pr / (p + r): class 1 is 2 * (1/2 * 1) / (1/2 + 1) = 2/3; classes 2 and 3 are 0 / 0 -> 0.
    np.testing.assert_allclose(f1, [1, 2 / 3, 0, 0])
    assert support.tolist() == [1, 1, 1, 0]


def test_report_accuracy_and_macro_averages():
    report = evaluate.evaluation_report(Y_TRUE, Y_PRED, ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["num_images"] == 6
    assert report["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report["macro_recall"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert [entry["class"] for entry in report["per_class"]] == ["a", "b", "c"]
    assert report["confusion_matrix"][0] == [2, 1, 0]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="shape"):
        evaluate.confusion_matrix([0, 1], [0], 2)


def test_figures_are_written(tmp_path):
    matrix = evaluate.confusion_matrix(Y_TRUE, Y_PRED, 3)
    path = evaluate.plot_confusion_matrix(matrix, ["a", "b", "c"], tmp_path / "cm.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    history = [{"epoch": e, "loss": 1.0 / (e + 1), "accuracy": 0.5 + 0.1 * e,
                "val_loss": 1.2 / (e + 1), "val_accuracy": 0.4 + 0.1 * e} for e in range(4)]
    path = evaluate.plot_training_curves(history, tmp_path / "curves.png", phase2_start=2)
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
