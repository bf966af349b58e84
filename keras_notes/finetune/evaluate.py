"""Validation metrics in NumPy, and the run's two figures.

For class ``c`` with confusion matrix ``M`` (rows = true class, columns = predicted)::

    precision_c = M[c, c] / sum(M[:, c])     of the images predicted c, the share that are c
    recall_c    = M[c, c] / sum(M[c, :])     of the images that are c, the share found
    f1_c        = 2 * precision_c * recall_c / (precision_c + recall_c)
    accuracy    = trace(M) / sum(M)

A ratio whose denominator is 0 (a class never predicted, or absent) is reported as 0.
"""

import numpy as np

from keras_notes.report import format_table, new_figure, save_figure


def confusion_matrix(y_true, y_pred, num_classes):
    """``(num_classes, num_classes)`` int array: ``M[t, p]`` counts images of class t predicted p."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in shape; received {y_true.shape} and {y_pred.shape}")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def _ratio(numerator, denominator):
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def per_class_metrics(matrix):
    """``(precision, recall, f1, support)``, each an array with one value per class."""
    matrix = np.asarray(matrix)
    correct = np.diag(matrix)
    precision = _ratio(correct, matrix.sum(axis=0))
    recall = _ratio(correct, matrix.sum(axis=1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, matrix.sum(axis=1)


def evaluation_report(y_true, y_pred, class_names):
    """A JSON-ready dict: accuracy, macro averages, per-class metrics and the confusion matrix."""
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    precision, recall, f1, support = per_class_metrics(matrix)
    total = int(matrix.sum())
    return {
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "num_images": total,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "per_class": [
            {"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        ],
        "class_names": list(class_names),
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_model(model, dataset, labels, class_names):
    """``evaluation_report`` for ``model`` on ``dataset`` (unshuffled, so ``labels`` are in its order).

    Rows past ``len(labels)`` are padding (``data.make_eval_dataset``) and are dropped.
    """
    probabilities = model.predict(dataset, verbose=0)[:len(labels)]  # (images, classes)
    if len(probabilities) != len(labels):
        raise ValueError(f"the dataset gave {len(probabilities)} predictions for {len(labels)} labels")
    return evaluation_report(labels, np.argmax(probabilities, axis=1), class_names)


def format_class_table(report):
    """The per-class part of a report as a text table, with the overall accuracy last."""
    rows = [[entry["class"], entry["precision"], entry["recall"], entry["f1"], entry["support"]]
            for entry in report["per_class"]]
    rows.append(["(accuracy)", "", "", report["accuracy"], report["num_images"]])
    return format_table(["class", "precision", "recall", "f1", "images"], rows, align="lrrrr")


def plot_confusion_matrix(matrix, class_names, path):
    """The confusion matrix as a PNG heat map, counts written in the cells."""
    matrix = np.asarray(matrix)
    size = max(4.0, 0.5 * len(class_names) + 2)
    figure, axes = new_figure(figsize=(size, size))
    axes.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    axes.set_xticks(ticks, labels=class_names, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if count > threshold else "black")
    axes.set_title("Validation confusion matrix")
    return save_figure(figure, path)


def plot_training_curves(history, path, phase2_start=None):
    """Loss and accuracy, training and validation, against epoch (1-based), in two panels.

    ``history`` is a list of rows (``runio.read_history``); a dashed vertical line marks
    the first epoch of phase 2 when ``phase2_start`` (its 0-based index) is given.
    """
    epochs = [row["epoch"] + 1 for row in history]
    figure, axes = new_figure(1, 2, figsize=(10, 4))
    from matplotlib.ticker import MaxNLocator  # after new_figure, which selects the Agg backend

    for panel, metric in zip(axes, ("loss", "accuracy")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            values = [row.get(key) for row in history]
            if any(isinstance(value, float) for value in values):
                panel.plot(epochs, values, marker="o", label=label)
        if phase2_start is not None:
            panel.axvline(phase2_start + 0.5, color="gray", linestyle="--", label="phase 2 starts")
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        panel.set_xlabel("epoch")
        panel.set_ylabel(metric)
        panel.legend()
    return save_figure(figure, path)
