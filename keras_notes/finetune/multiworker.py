"""Training under ``tf.distribute`` with a custom loop: the path of ``finetune --strategy multi-worker``.

Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` in TF 2.21
(keras-team/keras#20585: "Attempt to convert a value (PerReplica...)" in the trainer's
symbolic build; tensorflow/tensorflow#72388: "Invalid reduction dimension 0 for input
with 0 dimensions" when scalar metrics are reduced). This module trains the same model
with a loop of its own, built only from public APIs, in three steps that
``train_multi_worker`` reads as:

- build: the model under the strategy's scope, then each phase's optimizer and step
  functions (``multiworker_steps``: what every replica computes, and how the gradients
  and metrics are summed over replicas);
- resume: the epoch every worker has a checkpoint of (``multiworker_checkpoints``);
- loop: each epoch's batches (``multiworker_data``: every worker decodes its own shard of
  the same global batches), one step per batch, an evaluation, a checkpoint.

Writes: the chief writes the run folder, other workers a temporary folder
(``cluster.write_dir``) that ``finish_multi_worker`` removes once every worker is done.

With one process and no ``TF_CONFIG`` the same loop runs under the default strategy,
which is how the tests compare a two-worker run with a single-process one.
"""

import dataclasses
import math
import os
import time

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio
from keras_notes.finetune.cluster import remove_write_dir, write_dir
from keras_notes.finetune.multiworker_checkpoints import HISTORY_KEYS, EpochCheckpoints
from keras_notes.finetune.multiworker_data import steps_per_epoch, training_batches, validation_batches
from keras_notes.finetune.multiworker_steps import agree, make_steps


@dataclasses.dataclass
class MultiWorkerResult:
    """What ``train_multi_worker`` returns on every worker.

    ``confusion[i, j]`` counts validation images of class i predicted as j by the final
    model (``None`` without validation data). ``write_dir`` is where this worker writes:
    the run folder on the chief, a temporary folder elsewhere; write further run files
    only when ``is_chief``, then call ``finish_multi_worker`` on every worker.
    """

    model: object
    history: list  # one dict per epoch: "epoch" and HISTORY_KEYS (val_* NaN without validation)
    confusion: object
    initial_epoch: int  # the epoch this process started from (> 0 after a restart)
    is_chief: bool
    write_dir: str
    task: object = None


@dataclasses.dataclass(frozen=True)
class _Phase:
    """One training phase's step functions; the optimizer they update is in the checkpoint."""

    index: int  # 0: phase 1 (the head, or all of an unfrozen model); 1: phase 2 (the unfrozen base)
    train_step: object  # distributed batch -> [sum of loss shares, correct predictions]
    eval_step: object  # distributed batch -> [weighted loss sum, weighted correct, confusion matrix]


def finish_multi_worker(strategy, result):
    """Wait until every worker gets here, then remove this worker's temporary folder.

    Call it on every worker once the chief has written its run files: until then each
    worker keeps its checkpoints, so a group restarted after a crash in the chief's
    final writes resumes at the last epoch instead of starting again from nothing.
    """
    agree(strategy, 0)  # a collective: returns on each worker only when all have called it
    remove_write_dir(result.write_dir, result.task)


def _check_arguments(strategy, num_train, global_batch, fine_tune_epochs, unfreeze_fn):
    """Refuse what cannot run on every replica alike; -> the training steps per epoch."""
    import keras

    policy = keras.mixed_precision.dtype_policy().name
    if policy != "float32":
        # Keras 3's LossScaleOptimizer tests the gradients for inf/NaN before the cross-replica
        # sum (which happens inside the inner optimizer), so replicas could take different
        # branches of its cond around a collective op. Refuse rather than risk a hang.
        raise KerasNotesError(f"multi-worker training runs in float32; received the dtype policy {policy!r}")
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise KerasNotesError(f"the global batch must be a multiple of the {replicas} replicas; "
                              f"received global_batch={global_batch}")
    steps = steps_per_epoch(num_train, global_batch)
    if fine_tune_epochs and unfreeze_fn is None:
        raise KerasNotesError("fine_tune_epochs > 0 needs an unfreeze_fn for phase 2")
    return steps


def _start_phase(index, strategy, model, checkpoints, optimizer_fn, rate, unfreeze_fn, global_batch,
                 num_classes):
    """Phase ``index`` (0: head, 1: unfrozen base): a new optimizer at ``rate``, its steps, its checkpoints."""
    with strategy.scope():
        if index == 1:
            unfreeze_fn(model)
        optimizer = optimizer_fn(rate)
        optimizer.build(model.trainable_variables)  # its variables, mirrored, before any tf.function
        # Compiled only so that callbacks find model.optimizer (TensorBoard logs its learning rate)
        # and the saved model records how it was trained; the steps below use neither.
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    checkpoints.track(model, optimizer)
    return _Phase(index, *make_steps(strategy, model, optimizer, global_batch, num_classes))


def _train_epoch(train_step, batches, steps, global_batch):
    """Run ``steps`` training steps; -> (mean loss, accuracy) over the epoch's ``steps * global_batch`` images."""
    loss_sum = correct = 0.0
    for _ in range(steps):
        loss, hits = train_step(next(batches))
        loss_sum, correct = loss_sum + float(loss), correct + float(hits)
    return loss_sum / steps, correct / (steps * global_batch)


def _evaluate(eval_step, strategy, files, global_batch, image_size, num_classes):
    """-> (mean loss, accuracy, (num_classes, num_classes) confusion) over ``files``; NaNs and None without."""
    if not len(files):
        return math.nan, math.nan, None
    batches, steps = validation_batches(strategy, files, global_batch, image_size)
    totals = [0.0, 0.0, np.zeros((num_classes, num_classes))]
    for _ in range(steps):
        for i, value in enumerate(eval_step(next(batches))):
            totals[i] = totals[i] + value.numpy()
    return totals[0] / len(files), totals[1] / len(files), totals[2].astype(np.int64)


def _epoch_line(epoch, total_epochs, logs):
    metrics = " - ".join(f"{key}: {value:.4f}" for key, value in logs.items() if key != "seconds")
    return f"epoch {epoch + 1}/{total_epochs} - {metrics} - {logs['seconds']:.1f}s"


def train_multi_worker(build_model_fn, train_files, val_files, num_classes, image_size, global_batch,
                       epochs, lr, output_dir, *, seed=0, shuffle=True, augmentation=None,
                       fine_tune_epochs=0, fine_tune_lr=None, unfreeze_fn=None, after_training_fn=None,
                       callbacks=(), strategy=None, task=None, optimizer_fn=None, log=print):
    """Train ``build_model_fn()`` on ``train_files`` under ``strategy`` and return a ``MultiWorkerResult``.

    Run the same call on every worker. ``train_files`` / ``val_files`` are
    ``data.FileList``s (``val_files`` may be empty); ``global_batch`` is the batch summed
    over all replicas and must divide evenly among them. ``task`` is this process's
    ``cluster.Task`` (``None``: a single process, which is its own chief). Phase 1 runs
    ``epochs`` epochs at ``lr``; with ``fine_tune_epochs``, phase 2 calls
    ``unfreeze_fn(model)`` and continues with a new optimizer at ``fine_tune_lr``.
    ``optimizer_fn(lr)`` builds the optimizer (default: Adam). ``augmentation`` is a
    Keras layer applied to training batches in the input pipeline. ``after_training_fn(model)``
    runs on every worker after the last epoch, before the final evaluation (for example
    re-estimating batch-norm statistics); it must leave every worker's model the same, and
    return something true when it changed the model, so that the final evaluation runs again.
    ``callbacks`` are Keras callbacks, given ``on_train_begin``, ``on_epoch_begin``,
    ``on_epoch_end`` (with the epoch's metrics) and ``on_train_end``.

    Restart: the chief keeps its checkpoints in ``<output_dir>/checkpoints/multi-worker``, every other
    worker in its temporary folder; a group restarted with the same ``TF_CONFIG`` and
    arguments resumes at the last epoch every worker completed (``multiworker_checkpoints``).
    A completed run resumes at its end and only evaluates; train again in a new ``output_dir``.

    Every worker writes ``history.csv`` and its checkpoints to its ``write_dir``
    after each epoch; call ``finish_multi_worker`` at the end.
    """
    import keras
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    steps = _check_arguments(strategy, len(train_files), global_batch, fine_tune_epochs, unfreeze_fn)
    total_epochs = epochs + fine_tune_epochs
    rates = (lr, fine_tune_lr if fine_tune_lr is not None else lr / 10)
    optimizer_fn = optimizer_fn or (lambda rate: keras.optimizers.Adam(rate))
    folder = write_dir(output_dir, task)

    # Build: the same initial weights and dropout masks on every worker and on every start.
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = build_model_fn()
    checkpoints = EpochCheckpoints(folder)

    def start_phase(index):
        return _start_phase(index, strategy, model, checkpoints, optimizer_fn, rates[index], unfreeze_fn,
                            global_batch, num_classes)

    def evaluate(phase):
        return _evaluate(phase.eval_step, strategy, val_files, global_batch, image_size, num_classes)

    # Resume: a checkpoint saved at the end of phase 1 holds phase 1's optimizer, so restore it into
    # phase 1's objects, and let the loop switch to phase 2 as an uninterrupted run does.
    start = checkpoints.agreed_start(strategy, total_epochs)
    phase = start_phase(1 if fine_tune_epochs and start > epochs else 0)
    if start:
        log(f"resuming from epoch {start} (checkpoint {checkpoints.restore(start)})")

    # Loop: one pass over the epoch's batches, an evaluation, a checkpoint, the history.
    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    callback_list.on_train_begin()
    confusion = None
    for epoch in range(start, total_epochs):
        if epoch == epochs and phase.index == 0:  # phase 2 begins: unfreeze, new optimizer, new steps
            phase = start_phase(1)
        began = time.perf_counter()
        callback_list.on_epoch_begin(epoch)
        batches = training_batches(strategy, train_files, epoch, steps, global_batch, image_size, seed, shuffle,
                                   augmentation)
        loss, accuracy = _train_epoch(phase.train_step, batches, steps, global_batch)
        val_loss, val_accuracy, confusion = evaluate(phase)
        row = (loss, accuracy, val_loss, val_accuracy, time.perf_counter() - began)
        checkpoints.save(epoch, row)  # on every worker: the chief's into the run folder
        # Rewritten whole from the checkpointed history, so a resumed run's file has every epoch once.
        runio.write_history(os.path.join(folder, runio.HISTORY_FILE), checkpoints.rows())
        logs = dict(zip(HISTORY_KEYS, row))
        callback_list.on_epoch_end(epoch, logs)
        log(_epoch_line(epoch, total_epochs, logs))
    callback_list.on_train_end()

    # Evaluate again only if nothing was trained here, or the after-training step changed the model.
    changed = bool(after_training_fn(model)) if after_training_fn is not None else False
    if start == total_epochs or changed:
        confusion = evaluate(phase)[2]
    return MultiWorkerResult(model, checkpoints.rows(), confusion, start, task is None or task.is_chief,
                             folder, task)
