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

# Accuracy points (of 100) an artifact may lose against model.keras before the gate fails.
# Float artifacts compute the same function in another order: on the digits runs of
# docs/export.md no image changed class, so half a point catches a real fault (a wrong
# preprocessing flips far more) while leaving room for a near-tie on a few hundred images.
# float16 and dynamic range lost nothing there either; 1 point is the usual allowance.
# int8: the measured losses were up to MAX_DROP["int8"] / 2 on the three archs, so the
# limit is twice the worst seen (an int8 model calibrated on one black image lost 80+).
MAX_DROP = {"none": 0.5, "float16": 1.0, "dynamic": 1.0, "int8": 3.0}


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
