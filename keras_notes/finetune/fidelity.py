"""How far an exported model strays from ``model.keras`` on the run's validation images.

For reference probabilities ``P`` (``model.keras``), an artifact's ``Q`` (both ``(n, classes)``)
and the labels ``y``::

    accuracy        = mean(argmax Q == y)
    accuracy_delta  = accuracy(Q) - accuracy(P)          (negative: the artifact is worse)
    top1_agreement  = mean(argmax Q == argmax P)
    max_abs_prob    = max |Q - P|                         over every image and class

The fidelity gate fails an artifact whose accuracy falls more than ``MAX_DROP[quantize]``
below ``model.keras``'s.
"""

import numpy as np

from keras_notes.report import format_table

# Accuracy points (of 100) an artifact may lose against model.keras before the gate fails,
# from the digits runs of docs/export.md (VGG16, MobileNet, MobileNetV2; 359 validation
# images, so one image is 0.28 points). Float32 files changed no prediction on any arch:
# half a point still allows one near-tie, while a real fault (wrong preprocessing, a
# broken conversion) moves far more. float16 changed none and dynamic range at most 2
# (0.56 points of disagreement, no accuracy lost): 1 point. int8 lost at most 0.28 points,
# and disagreed with model.keras on at most 7 images (1.95 points, MobileNet calibrated on
# 10 images); 2 points is that worst case with every disagreement a new mistake. int8
# calibrated on one black image fell to chance, 83 and 87 points down (docs/export.md).
MAX_DROP = {"none": 0.5, "float16": 1.0, "dynamic": 1.0, "int8": 2.0}


class FidelityGateFailed(Exception):
    """An exported artifact lost more accuracy than its gate allows (not a user error: exit status 1)."""


def compare(reference, probabilities, labels):
    """The module docstring's four numbers for ``probabilities`` against ``reference`` on ``labels``."""
    reference = np.asarray(reference, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if reference.shape != probabilities.shape or reference.shape[0] != labels.shape[0]:
        raise ValueError(f"shapes differ: reference {reference.shape}, probabilities {probabilities.shape}, "
                         f"labels {labels.shape}")
    predicted, expected = probabilities.argmax(axis=1), reference.argmax(axis=1)
    accuracy = float(np.mean(predicted == labels))
    return {
        "accuracy": accuracy,
        "accuracy_delta": accuracy - float(np.mean(expected == labels)),
        "top1_agreement": float(np.mean(predicted == expected)),
        "max_abs_prob_diff": float(np.max(np.abs(probabilities - reference))) if reference.size else 0.0,
    }


def gate(row):
    """``(passed, limit)``: whether ``row``'s accuracy drop stays within ``MAX_DROP`` for its quantisation."""
    limit = MAX_DROP[row["quantize"]]
    return -row["accuracy_delta"] * 100 <= limit + 1e-9, limit


def format_report_table(rows):
    """The printed table: one line per artifact, ``model.keras`` first."""
    headers = ["format", "quantize", "size (MB)", "accuracy", "delta (points)", "top-1 agreement",
               "max |dprob|", "ms 1 thread", "ms default", "gate"]
    lines = []
    for row in rows:
        lines.append([row["format"], row["quantize"], f"{row['bytes'] / 1e6:.2f}", f"{row['accuracy']:.4f}",
                      f"{row['accuracy_delta'] * 100:+.2f}", f"{row['top1_agreement']:.4f}",
                      f"{row['max_abs_prob_diff']:.2e}", _ms(row.get("latency_ms_1_thread")),
                      _ms(row.get("latency_ms_default")), row.get("gate", "")])
    return format_table(headers, lines, align="llrrrrrrrl")


def _ms(value):
    return "-" if value is None else f"{value:.2f}"
