"""Batch size: training throughput and the loss reached after a fixed number of epochs.

The notes say "larger batches = faster training but the quality of model may degrade".
What a fixed epoch budget actually shows:

- Throughput (samples per second) rises steeply with the batch size, because each
  optimizer step has a fixed overhead and a bigger batch spreads it over more samples.
- With the same learning rate and the same number of epochs, a batch of B makes
  ``samples / B`` updates per epoch, so big batches take far fewer steps and end at a
  *higher* loss. That is under-training from fewer updates, not a property of large
  batches as such. Measured with the defaults: batch 64 for 40 epochs and batch 256 for
  160 epochs (320 updates each) both reach validation loss 0.189, and batch 64 at
  5 epochs with learning rate 0.8 reaches 0.159, against 0.131 for batch 4 at 5 epochs.

The model is the notes' In[7] shape (5 inputs, Dense(16, relu), Dense(32, relu),
Dense(2, softmax)), trained with plain SGD on a small synthetic two-class problem.
"""

import time
from dataclasses import dataclass

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.fields import option

BATCH_SIZES = (1, 4, 16, 64, 256)


@dataclass(frozen=True)
class BatchSizeConfig:
    samples: int = option(512, "training samples")  # training samples; batch 1 then costs 512 steps per epoch
    val_samples: int = 1024
    epochs: int = option(5, "the same for every batch size")  # the fixed budget every batch size gets
    learning_rate: float = option(0.05, "SGD, all sizes")  # plain SGD, the same for every batch size
    seed: int = option(0, "data, weights and shuffling seed")

    def __post_init__(self):
        for name in ("samples", "val_samples", "epochs"):
            if getattr(self, name) < 1:
                raise KerasNotesError(f"{name} must be at least 1; received {name}={getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise KerasNotesError(f"learning_rate must be positive; received learning_rate={self.learning_rate!r}")


def make_data(config=BatchSizeConfig()):
    """Five Gaussian features; class 1 where ``x0 * x1 + x2 > 0`` (not linearly separable).

    Returns ``(x_train, y_train, x_val, y_val)``: x ``(n, 5)`` float32, y ``(n,)`` int labels.
    """
    rng = np.random.default_rng(config.seed)
    x = rng.normal(size=(config.samples + config.val_samples, 5)).astype("float32")
    y = (x[:, 0] * x[:, 1] + x[:, 2] > 0).astype("int32")
    return x[:config.samples], y[:config.samples], x[config.samples:], y[config.samples:]


def build_model():
    """The notes' In[7] from ``keras_notes.notes_models.in7``, on input (5,) rather than the
    notes' (1, 5) so that the output is (batch, 2) for a plain sparse cross-entropy:
    5 inputs, Dense(16, relu), Dense(32, relu), Dense(2, softmax).

    Parameters: 5*16 + 16 = 96; 16*32 + 32 = 544; 32*2 + 2 = 66; total 706.
    """
    from keras_notes.notes_models import in7

    return in7(input_shape=(5,))


def _step_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Wall time of every training step, by epoch. Timing steps rather than whole
        epochs leaves out fit's fixed per-epoch cost, which would otherwise cap the
        measured throughput of the largest batches (two steps per epoch at 256)."""

        def __init__(self):
            super().__init__()
            self.seconds = []  # one list of step times per epoch

        def on_epoch_begin(self, epoch, logs=None):
            self.seconds.append([])

        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds[-1].append(time.perf_counter() - self._start)

    return StepTimer()


def _loss_and_accuracy(model, x, y):
    """Mean cross-entropy and accuracy of the trained model on ``(x, y)``, in one forward
    pass (``model.evaluate`` would trace a graph per model for a single batch)."""
    import keras

    probs = keras.ops.convert_to_numpy(model(x, training=False))  # (n, 2)
    loss = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(y, probs))  # (n,)
    return float(loss.mean()), float(np.mean(probs.argmax(axis=1) == y))


def train_one(batch_size, config=BatchSizeConfig(), data=None):
    """Train a fresh model (same seed, same data) for ``config.epochs`` epochs at ``batch_size``.

    Returns a dict: ``batch_size``, ``updates`` (optimizer steps in total),
    ``samples_per_second`` (samples over seconds of the fastest step, leaving out the
    first epoch, whose first step traces the graph, unless it is the only one; the
    fastest, as ``timeit`` advises, because other processes can only ever add time),
    and ``train_loss``, ``val_loss`` and ``val_accuracy`` measured after training.
    """
    import keras
    import tensorflow as tf

    if batch_size < 1:
        raise KerasNotesError(f"batch_size must be at least 1; received batch_size={batch_size!r}")
    x_train, y_train, x_val, y_val = data if data is not None else make_data(config)
    keras.utils.set_random_seed(config.seed)  # same initial weights for every batch size
    model = build_model()
    model.compile(optimizer=keras.optimizers.SGD(config.learning_rate), loss="sparse_categorical_crossentropy")
    # tf.data rather than NumPy arrays: it keeps fit's per-epoch cost small (measured
    # ~5 ms against ~30 ms), which matters when the whole budget is a few seconds.
    batches = (tf.data.Dataset.from_tensor_slices((x_train, y_train))
               .shuffle(len(x_train), seed=config.seed).batch(batch_size))
    timer = _step_timer()
    model.fit(batches, epochs=config.epochs, shuffle=False, verbose=0, callbacks=[timer])
    # Samples in step i of an epoch: a full batch, except perhaps the last one.
    step_sizes = [min(batch_size, len(x_train) - i * batch_size) for i in range(-(-len(x_train) // batch_size))]
    rates = [size / seconds for epoch in (timer.seconds[1:] or timer.seconds)
             for size, seconds in zip(step_sizes, epoch)]
    train_loss, _ = _loss_and_accuracy(model, x_train, y_train)
    val_loss, val_accuracy = _loss_and_accuracy(model, x_val, y_val)
    return {"batch_size": batch_size, "updates": config.epochs * -(-len(x_train) // batch_size),
            "samples_per_second": float(max(rates)),
            "train_loss": float(train_loss), "val_loss": float(val_loss), "val_accuracy": float(val_accuracy)}


def batch_size_sweep(batch_sizes=BATCH_SIZES, config=BatchSizeConfig()):
    """``train_one`` for each batch size on one shared data set; one row (dict) per size."""
    if not batch_sizes:
        raise KerasNotesError("batch_sizes is empty; give at least one batch size")
    data = make_data(config)
    return [train_one(int(b), config, data) for b in batch_sizes]
