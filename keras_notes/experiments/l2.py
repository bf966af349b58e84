"""L2 regularization on the notes' In[10] model: the penalty it adds, and what it does to the weights.

``kernel_regularizer=regularizers.l2(0.01)`` adds ``0.01 * sum(kernel ** 2)`` to the loss
(no factor 1/2, unlike many textbooks). Its gradient, ``2 * 0.01 * kernel``, pulls every
weight of that layer toward zero at each step, so after training the regularized kernel
has a smaller norm. ``l2_sweep`` trains the same model (same seed, same data, same
epochs) for several strengths and records that norm after every epoch.

The data: one input feature ``x`` in [-1, 1] (the notes' ``input_shape=(1,)``), class
``sin(3x) > 0`` with a fraction of labels flipped, one-hot over the two sigmoid outputs
and scored with binary cross-entropy.
"""

from dataclasses import dataclass

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.fields import option

STRENGTHS = (0.0, 1e-3, 1e-2, 1e-1)
REGULARIZED_LAYER = "hidden2"  # the Dense(32) layer that carries the L2 penalty


def build_in10_model(l2_strength=0.01):
    """The notes' In[10] from ``keras_notes.notes_models.in10``: input (1,), Dense(16, relu),
    Dense(32, relu, L2), Dense(2, sigmoid).

    Parameters (``inputs*units + units`` per layer):
    1*16 + 16 = 32; 16*32 + 32 = 544; 32*2 + 2 = 66; total 32 + 544 + 66 = 642.
    ``l2_strength=0`` keeps the regularizer with factor 0, so the penalty is exactly zero
    and every strength trains the very same architecture.
    """
    from keras_notes.notes_models import in10

    if l2_strength < 0:
        raise KerasNotesError(f"l2_strength must be >= 0; received l2_strength={l2_strength!r}")
    return in10(l2=l2_strength)


@dataclass(frozen=True)
class L2Config:
    # Few samples and noisy labels: room to overfit, so L2 has work to do.
    train_samples: int = option(48, "training samples (few, so that the model can overfit)")
    val_samples: int = 512  # a large validation set, so its loss is not itself noise
    label_noise: float = 0.2  # fraction of labels flipped
    epochs: int = option(100, "training epochs")  # the kernel norms settle after ~60 epochs (see the plot)
    batch_size: int = 16
    learning_rate: float = 0.01  # Adam
    seed: int = option(0, "data, weights and shuffling seed")

    def __post_init__(self):
        for name in ("train_samples", "val_samples", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise KerasNotesError(f"{name} must be at least 1; received {name}={getattr(self, name)!r}")
        if not 0 <= self.label_noise < 0.5:
            raise KerasNotesError(f"label_noise must be in [0, 0.5); received label_noise={self.label_noise!r}")


def make_data(config=L2Config()):
    """``(x_train, y_train, x_val, y_val)``; x is ``(n, 1)``, y one-hot ``(n, 2)`` float32."""
    rng = np.random.default_rng(config.seed)

    def draw(n):
        x = rng.uniform(-1.0, 1.0, size=(n, 1))
        label = (np.sin(3.0 * x[:, 0]) > 0).astype(int)
        flip = rng.random(n) < config.label_noise
        label = np.where(flip, 1 - label, label)
        return x.astype("float32"), np.eye(2, dtype="float32")[label]

    return (*draw(config.train_samples), *draw(config.val_samples))


def _data_loss(model, x, y):
    """Binary cross-entropy without the penalty, so different strengths compare fairly."""
    import keras

    return float(keras.losses.BinaryCrossentropy()(y, model(x, training=False)))


def train_with_l2(l2_strength, config=L2Config(), data=None):
    """Train the In[10] model once. Returns a dict with ``l2``, ``weight_norms`` (Frobenius
    norm of the 32-unit kernel after each epoch, epoch 0 = before training), ``weight_norm``
    (final), ``train_loss`` and ``val_loss`` (data loss only) and ``penalty`` (``sum(model.losses)``)."""
    import keras
    import tensorflow as tf

    x_train, y_train, x_val, y_val = data if data is not None else make_data(config)
    keras.utils.set_random_seed(config.seed)  # same initial weights and shuffling for every strength
    # A tf.data pipeline rather than NumPy arrays: with tiny epochs, fit's per-epoch cost
    # dominates, and it measured ~5 ms per epoch this way against ~30 ms with arrays.
    batches = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
               .shuffle(len(x_train), seed=config.seed).batch(config.batch_size))
    model = build_in10_model(l2_strength)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="binary_crossentropy")
    kernel = model.get_layer(REGULARIZED_LAYER).kernel
    norms = [float(np.linalg.norm(kernel.numpy()))]
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: norms.append(
        float(np.linalg.norm(kernel.numpy()))))
    model.fit(batches, epochs=config.epochs, shuffle=False, verbose=0, callbacks=[record])  # batches shuffle
    return {"l2": l2_strength, "weight_norms": np.array(norms), "weight_norm": norms[-1],
            "train_loss": _data_loss(model, x_train, y_train), "val_loss": _data_loss(model, x_val, y_val),
            "penalty": float(sum(float(loss) for loss in model.losses))}


def l2_sweep(strengths=STRENGTHS, config=L2Config()):
    """``train_with_l2`` for each strength, on one shared data set."""
    data = make_data(config)
    return [train_with_l2(strength, config, data) for strength in strengths]
