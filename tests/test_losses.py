"""The smoothed sparse cross-entropy against the formula computed in NumPy."""

import keras
import numpy as np
import pytest

from keras_notes.losses import SparseSmoothedCrossentropy, loss_for


def numpy_smoothed_crossentropy(labels, probabilities, smoothing):
    """Mean over the batch of -sum_k t_k log p_k, with t = (1 - s) onehot + s / classes."""
    classes = probabilities.shape[-1]
    targets = np.eye(classes)[labels] * (1 - smoothing) + smoothing / classes
    return float(np.mean(-(targets * np.log(probabilities)).sum(axis=-1)))


PROBABILITIES = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4], [0.25, 0.5, 0.25]], np.float32)
LABELS = np.array([0, 2, 1, 1])


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_is_the_smoothed_cross_entropy(smoothing):
    expected = numpy_smoothed_crossentropy(LABELS, PROBABILITIES, smoothing)
    loss = SparseSmoothedCrossentropy(smoothing)
    assert float(loss(LABELS, PROBABILITIES)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(LABELS[:, None], PROBABILITIES)) == pytest.approx(expected, rel=1e-5)  # (batch, 1) labels


def test_smoothing_changes_the_loss_and_zero_keeps_keras_own():
    assert numpy_smoothed_crossentropy(LABELS, PROBABILITIES, 0.1) != numpy_smoothed_crossentropy(
        LABELS, PROBABILITIES, 0.0)
    assert loss_for(0.0) == "sparse_categorical_crossentropy"
    sparse = keras.losses.SparseCategoricalCrossentropy()(LABELS, PROBABILITIES)
    assert float(SparseSmoothedCrossentropy(0.0)(LABELS, PROBABILITIES)) == pytest.approx(float(sparse), rel=1e-6)
    assert loss_for(0.2).label_smoothing == 0.2


def test_loss_round_trips_through_its_config_and_refuses_bad_values():
    loss = keras.losses.deserialize(keras.losses.serialize(SparseSmoothedCrossentropy(0.2)))
    assert isinstance(loss, SparseSmoothedCrossentropy) and loss.label_smoothing == 0.2
    with pytest.raises(ValueError, match="label_smoothing=1.0"):
        SparseSmoothedCrossentropy(1.0)
