"""The KerasTuner side of a head sweep: the hypermodel that builds a head, and the seeded, timed tuner.

A trial trains only the head, on the frozen base's pooled output::

    features (batch, c) -> [hidden Dense(h, relu) ->] dropout -> predictions (batch, classes)

the same layers ``models.build_model`` puts on the base (``models.head``), compiled as a
run compiles them (``train.compile_model``: Adam at the trial's lr, the cross-entropy
with the trial's label smoothing). Each trial's batches are the ones the winner's
retraining sees in its phase 1 (``cache.feature_dataset``, the same seeded shuffle of the
same rows), and its initialisation and dropout masks are seeded by
``seed + trial number``, so a trial does not depend on the ones before it. KerasTuner
is imported here only, on first use.

Speed: a trial is dominated by Keras's per-trial and per-step overhead, not by the
head's arithmetic. Measured here (800 MobileNet features, batch 32, 10 epochs, 2 shared
CPU cores): tracing a new model's train and test functions costs about 0.9 s, so the
heads are reused, one per hidden width (``ReusedHeads``), and a trial on a reused head
took 1.4-1.7 s against 4.1 s for the first on a new one; an epoch runs in one call
(``steps_per_execution``) from in-RAM tensors.
"""

import dataclasses
import functools
import time
import types

import numpy as np

from keras_notes.finetune.cache import feature_dataset
from keras_notes.finetune.sweep_config import TUNERS

TUNER_DIR = "tuner"  # KerasTuner's own files (trial.json, checkpoints), under the sweep folder
OBJECTIVE = "val_accuracy"  # what KerasTuner maximises: a trial's best epoch


@dataclasses.dataclass
class TrialRecord:
    """What a trial measured, beside what KerasTuner keeps: every epoch's logs and its wall time."""

    history: dict  # keras History.history: metric -> one value per epoch
    seconds: float  # the head's build and fit


def _float(hp, name, low, high, sampling="linear"):
    """``hp.Float`` over [low, high], or ``hp.Fixed`` when the range is one value."""
    if low == high:
        return hp.Fixed(name, float(low))
    return hp.Float(name, float(low), float(high), sampling=sampling)


class ReusedHeads:
    """One compiled head per hidden width, re-initialised for each trial instead of built anew.

    Keras traces a new model's train and test functions on its first ``fit`` (about 0.9 s
    a trial here, most of a trial's time); a model fitted again reuses them. So each width
    gets one model whose trial settings live in variables: the dropout rate
    (``trial_dropout_class``), Adam's learning rate, and the label smoothing of its loss. A trial
    then assigns them, draws the Dense layers' weights again from their initialisers
    with the trial's seed, resets Adam's state and the dropout layer's seed, and fits.
    The layers are ``models.head``'s: ``[Dense(h, relu) ->] dropout -> Dense(softmax)`` (``models.head``).
    """

    def __init__(self, input_shape, num_classes, steps_per_execution):
        self.input_shape, self.num_classes, self.steps = input_shape, num_classes, steps_per_execution
        self.models = {}

    def _build(self, hidden_units):
        import keras

        from keras_notes.finetune.models import head
        from keras_notes.losses import smoothed_sparse_crossentropy

        inputs = keras.Input(self.input_shape, name="features")  # (batch, c)
        outputs = head(inputs, self.num_classes, hidden_units=hidden_units,
                       dropout_layer=trial_dropout_class()(name="dropout"))
        model = keras.Model(inputs, outputs, name="head")
        smoothing = keras.Variable(0.0, trainable=False, name="label_smoothing")
        # The smoothing is read when a step runs (a variable), not fixed when it is traced.
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=lambda y_true, y_pred: smoothed_sparse_crossentropy(y_true, y_pred, smoothing),
                      metrics=["accuracy"], steps_per_execution=self.steps)
        return model, smoothing

    def model(self, seed, lr, dropout, hidden_units, label_smoothing):
        """The head for ``hidden_units``, set for one trial: fresh weights drawn with ``seed``."""
        import keras
        import numpy as np

        if hidden_units not in self.models:
            self.models[hidden_units] = self._build(hidden_units)
        model, smoothing = self.models[hidden_units]
        keras.utils.set_random_seed(seed)
        dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
        for index, layer in enumerate(dense):
            # The layer's own initialiser, drawn again with a seed of this trial's (an initialiser
            # made without one keeps the seed it drew when the layer was made).
            initializer = layer.kernel_initializer
            config = initializer.get_config()
            if "seed" in config:
                initializer = type(initializer).from_config({**config, "seed": seed * 16 + index})
            layer.kernel.assign(initializer(layer.kernel.shape, layer.kernel.dtype))
            layer.bias.assign(layer.bias_initializer(layer.bias.shape, layer.bias.dtype))
        model.get_layer("dropout").reset(dropout, seed)
        for variable in model.optimizer.variables:  # step count and moments: a fresh Adam
            variable.assign(np.zeros(variable.shape, variable.dtype))
        model.optimizer.learning_rate = lr  # the setter assigns the optimizer's variable
        smoothing.assign(label_smoothing)
        return model


@functools.cache
def trial_dropout_class():
    """``TrialDropout``, defined on first use (Keras is imported lazily in this module)."""
    import keras

    class TrialDropout(keras.layers.Layer):
        """Dropout whose rate is a variable (``reset`` sets it and the mask seed for a trial)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = keras.random.SeedGenerator(0)
            # Held outside Keras's tracking, so that the rate is no weight: the head counts the
            # parameters a run's head counts.
            self._setting = types.SimpleNamespace(rate=keras.Variable(0.0, trainable=False, name="dropout_rate"))

        def reset(self, rate, seed):
            import numpy as np

            self._setting.rate.assign(rate)
            self.seed_generator.state.assign(np.asarray([seed, 0], self.seed_generator.state.dtype))

        def call(self, inputs, training=False):
            if not training:
                return inputs
            rate = keras.ops.cast(self._setting.rate, inputs.dtype)
            keep = keras.random.uniform(keras.ops.shape(inputs), seed=self.seed_generator) >= rate
            return keras.ops.where(keep, inputs / (1.0 - rate), keras.ops.zeros_like(inputs))

    return TrialDropout


def make_hypermodel(config, num_classes, features, labels):
    """A ``keras_tuner.HyperModel`` whose models are heads on ``features`` (training ``(n, c)`` array).

    ``features`` and ``labels`` (``(n,)`` ints) are the training set; each ``fit`` builds
    its own shuffled batches from them, seeded with ``config.seed``. The heads are
    ``ReusedHeads``': one per hidden width, set anew for each trial.
    """
    import keras_tuner

    from keras_notes.errors import KerasNotesError

    steps = len(labels) // config.batch_size  # per epoch: the last partial batch is dropped, as in a run
    if steps < 1:
        raise KerasNotesError(f"batch_size={config.batch_size} is more than the {len(labels)} training images; "
                              f"pass a batch size of at most {len(labels)}")
    heads = ReusedHeads(features.shape[1:], num_classes, steps)

    class HeadHyperModel(keras_tuner.HyperModel):
        trial_seed = config.seed  # set by the tuner before each trial (make_tuner)

        def build(self, hp):
            lr = _float(hp, "lr", config.lr_min, config.lr_max, sampling="log")
            dropout = _float(hp, "dropout", config.dropout_min, config.dropout_max)
            widths = list(config.hidden_units)
            hidden = hp.Fixed("hidden_units", widths[0]) if len(widths) == 1 else hp.Choice("hidden_units", widths)
            smoothing = _float(hp, "label_smoothing", config.smoothing_min, config.smoothing_max)
            return heads.model(self.trial_seed, lr, dropout, hidden, smoothing)

        def fit(self, hp, model, *args, **kwargs):
            # A new dataset each trial: its shuffle starts from the seed, so every trial (and the
            # retraining's phase 1) sees the same batches in the same order.
            train = feature_dataset(features, labels, config.batch_size, training=True, seed=config.seed)
            return model.fit(train, *args, **kwargs)

    return HeadHyperModel(name="head")


def make_tuner(config, hypermodel, directory, records):
    """The KerasTuner tuner ``config.tuner`` over ``hypermodel``, seeded; each finished trial's
    ``TrialRecord`` goes into ``records[trial_id]``. Its files (the oracle's state, one
    ``trial.json`` per trial) go to ``directory/tuner``, replaced."""
    import keras_tuner

    base = getattr(keras_tuner, TUNERS[config.tuner])

    class TimedTuner(base):
        def run_trial(self, trial, *args, **kwargs):
            # Build and fit, as KerasTuner's documentation shows run_trial overridden. Its own
            # run_trial also clears the Keras session and collects garbage before each build
            # (0.27 s a trial, measured) and saves the best epoch's weights, which the sweep
            # never reads: it retrains the winner from its hyperparameters.
            hypermodel.trial_seed = config.seed + int(trial.trial_id)
            start = time.perf_counter()
            hp = trial.hyperparameters
            history = hypermodel.fit(hp, hypermodel.build(hp), *args, **kwargs)
            records[trial.trial_id] = TrialRecord(dict(history.history), time.perf_counter() - start)
            return history

    return TimedTuner(hypermodel, objective=OBJECTIVE, max_trials=config.trials, seed=config.seed,
                      directory=directory, project_name=TUNER_DIR, overwrite=True)


def trial_rows(tuner, records):
    """One row per completed trial, best first: ``val_accuracy`` of its best epoch, higher first; then
    the ``val_loss`` of that epoch, lower first; then the trial id."""
    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        if trial_id not in records:  # a trial that failed or never ran
            continue
        record, values = records[trial_id], trial.hyperparameters.values
        accuracy = np.asarray(record.history[OBJECTIVE])
        best = int(np.argmax(accuracy))  # the first epoch with the best val_accuracy
        rows.append({"trial": trial_id, "lr": float(values["lr"]), "dropout": float(values["dropout"]),
                     "hidden_units": int(values["hidden_units"]),
                     "label_smoothing": float(values["label_smoothing"]),
                     "val_accuracy": float(accuracy[best]), "epoch": best + 1,
                     "val_loss": float(record.history["val_loss"][best]), "seconds": record.seconds})
    return sorted(rows, key=lambda row: (-row["val_accuracy"], row["val_loss"], row["trial"]))
