"""Sparse categorical cross-entropy with label smoothing, which Keras's own sparse loss lacks.

Keras 3.15's ``SparseCategoricalCrossentropy`` takes no ``label_smoothing`` (only the
one-hot ``CategoricalCrossentropy`` does), while the package's datasets yield integer
labels. This loss one-hot encodes them and computes what
``keras.losses.categorical_crossentropy(..., label_smoothing=s)`` computes: the target of
class ``k`` becomes ``(1 - s) * onehot(k) + s / classes``. With ``s = 0`` the runs keep Keras's
own ``"sparse_categorical_crossentropy"`` (``loss_for``), so their training is unchanged.
"""

import keras


@keras.saving.register_keras_serializable(package="keras_notes")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """Cross-entropy of probabilities ``(batch, classes)`` against integer labels ``(batch,)``, smoothed."""

    def __init__(self, label_smoothing=0.1, name="sparse_smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(label_smoothing, bool) or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); received label_smoothing={label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        return smoothed_sparse_crossentropy(y_true, y_pred, self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def smoothed_sparse_crossentropy(y_true, y_pred, label_smoothing):
    """Per-example cross-entropy of ``y_pred`` (batch, classes) against integer ``y_true``, smoothed.

    The arithmetic of ``keras.losses.categorical_crossentropy(label_smoothing=s)``, written
    out so that ``s`` may also be a variable read when the step runs (the sweep's trials).
    """
    classes = keras.ops.shape(y_pred)[-1]
    labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))  # (batch,) or (batch, 1) -> (batch,)
    one_hot = keras.ops.one_hot(labels, classes, dtype=y_pred.dtype)  # (batch, classes)
    s = keras.ops.cast(label_smoothing, y_pred.dtype)
    target = one_hot * (1.0 - s) + s / keras.ops.cast(classes, y_pred.dtype)
    return keras.ops.categorical_crossentropy(target, y_pred)


def loss_for(label_smoothing=0.0):
    """The runs' loss: Keras's sparse cross-entropy, or ``SparseSmoothedCrossentropy`` when smoothing."""
    return SparseSmoothedCrossentropy(label_smoothing) if label_smoothing else "sparse_categorical_crossentropy"
