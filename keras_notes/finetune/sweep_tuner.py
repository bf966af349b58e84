"""The KerasTuner side of a head sweep: the hypermodel that builds a head, and the seeded, timed tuner.

A trial trains only the head, on the frozen base's pooled output::

    features (batch, c) -> [hidden Dense(h, relu) ->] dropout -> predictions (batch, classes)

the same layers ``models.build_model`` puts on the base (``models.head``), compiled as a
run compiles them (``train.compile_model``: Adam at the trial's lr, the cross-entropy
with the trial's label smoothing). Each trial's batches are the ones the winner's
retraining sees in its phase 1 (the same seeded shuffle of the same rows as
``cache.feature_dataset``), and its initialisation and dropout masks are seeded by
``seed + trial number``, so a trial does not depend on the ones before it. KerasTuner
is imported here only, on first use.

Speed: a trial is dominated by Keras's per-trial and per-step overhead, not by the
head's arithmetic. Measured here (800 MobileNet features, batch 32, 10 epochs, hidden
256, 2 shared CPU cores): tracing the train and test functions costs about 0.9 s per
trial, whatever is done; an epoch of 25 steps plus 7 validation steps took 0.19-0.26 s
with ``cache.feature_dataset`` (a ``numpy_function`` per batch) and one step per call,
and 0.10-0.13 s from in-RAM tensors with the whole epoch in one call
(``steps_per_execution``), which is what the trials use.
"""

import dataclasses
import time

import numpy as np

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


def make_hypermodel(config, num_classes, features, labels):
    """A ``keras_tuner.HyperModel`` whose models are heads on ``features`` (training ``(n, c)`` array).

    ``features`` and ``labels`` (``(n,)`` ints) are the training set; each ``fit`` builds
    its own shuffled batches from them, seeded with ``config.seed``.
    """
    import keras
    import keras_tuner

    from keras_notes.errors import KerasNotesError
    from keras_notes.finetune.models import head
    from keras_notes.finetune.train import compile_model

    steps = len(labels) // config.batch_size  # per epoch: the last partial batch is dropped, as in a run
    if steps < 1:
        raise KerasNotesError(f"batch_size={config.batch_size} is more than the {len(labels)} training images; "
                              f"pass a batch size of at most {len(labels)}")

    class HeadHyperModel(keras_tuner.HyperModel):
        trial_seed = config.seed  # set by the tuner before each trial (make_tuner)

        def build(self, hp):
            # KerasTuner has just cleared the Keras session; seed what this trial draws.
            keras.utils.set_random_seed(self.trial_seed)
            lr = _float(hp, "lr", config.lr_min, config.lr_max, sampling="log")
            dropout = _float(hp, "dropout", config.dropout_min, config.dropout_max)
            widths = list(config.hidden_units)
            hidden = hp.Fixed("hidden_units", widths[0]) if len(widths) == 1 else hp.Choice("hidden_units", widths)
            smoothing = _float(hp, "label_smoothing", config.smoothing_min, config.smoothing_max)
            inputs = keras.Input(features.shape[1:], name="features")  # (batch, c)
            model = keras.Model(inputs, head(inputs, num_classes, dropout, hidden), name="head")
            compile_model(model, lr, smoothing, steps_per_execution=steps)
            return model

        def fit(self, hp, model, *args, **kwargs):
            # A new dataset each trial: its shuffle starts from the seed, so every trial (and the
            # retraining's phase 1) sees the same batches in the same order.
            train = in_ram_dataset(features, labels, config.batch_size, training=True, seed=config.seed)
            return model.fit(train, *args, **kwargs)

    return HeadHyperModel(name="head")


def in_ram_dataset(features, labels, batch_size, training=False, seed=0):
    """``(features, labels)`` batches from in-RAM arrays; shuffled per epoch and cut like
    ``cache.feature_dataset`` when training (the same seeded permutation of the rows)."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.asarray(features, np.float32), np.asarray(labels, np.int32)))
    if training:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


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
