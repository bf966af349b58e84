"""Training under ``tf.distribute`` with a custom loop: the path of ``finetune --strategy multi-worker``.

Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy`` in TF 2.21
(keras-team/keras#20585: "Attempt to convert a value (PerReplica...)" in the trainer's
symbolic build; tensorflow/tensorflow#72388: "Invalid reduction dimension 0 for input
with 0 dimensions" when scalar metrics are reduced). This module trains the same model
with a loop of its own, built only from public APIs:

- the step runs on every replica with ``strategy.run``; each replica's loss is
  ``tf.nn.compute_average_loss(per_example_loss, global_batch_size)``, its share of the
  global mean, and Keras 3's TensorFlow optimizer sums the gradients over all replicas
  inside ``apply_gradients`` (``TFOptimizer._all_reduce_sum_gradients``), so the update
  is the gradient of the global batch's mean loss, exactly as on one machine (the tests
  check two workers against ``model.fit`` with SGD, whose step is proportional to the
  gradient, so a gradient summed twice or not at all would show);
- metrics are per-replica sums combined with ``strategy.reduce(SUM, ...)``;
- data: each worker builds its own pipeline (``distribute_datasets_from_function``) from
  its shard of the *file list* (``Dataset.shard(num_workers, worker_id)`` before any
  decoding), with auto-sharding switched off explicitly;
- batches: global batch = per-replica batch x replicas. Every worker runs
  ``len(train) // global_batch`` steps per epoch: the last ``len(train) % global_batch``
  files of each epoch's order are dropped (the order changes every epoch, so every file
  is used over a run). Validation is padded to whole global batches with zero-weight
  copies instead, so every validation image counts exactly once. Either way every
  worker runs the same number of steps, and none waits for a partial batch;
- fault tolerance: ``tf.train.CheckpointManager`` saves the model, the optimizer, the
  epoch and the history after every epoch; a restarted group resumes from the last
  epoch that every worker completed (see ``train_multi_worker``);
- writes: the chief writes the run folder, other workers a temporary folder
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

# Inside the write folder, apart from the single-machine run's BackupAndRestore folders:
# ckpt-<epoch>.index / .data-*, numbered by the epochs they complete.
CHECKPOINT_DIR = os.path.join(runio.CHECKPOINT_DIR, "multi-worker")
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")  # history.csv's columns, as fit's
# Two, not one: workers that crash one epoch apart can still restore the older, common epoch.
KEEP_CHECKPOINTS = 2


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


def steps_per_epoch(num_examples, global_batch):
    """Training steps per epoch: ``num_examples // global_batch`` (the remainder is dropped)."""
    steps = num_examples // global_batch
    if steps < 1:
        raise KerasNotesError(f"{num_examples} training images do not fill one global batch of {global_batch} "
                              f"(per-replica batch x replicas); use a smaller batch")
    return steps


def epoch_order(num_examples, seed, epoch, shuffle=True):
    """The order of the training files in ``epoch``: a permutation drawn from ``(seed, epoch)``.

    A function of the epoch number rather than of an iterator's state, so a run that
    resumes at epoch k sees exactly the orders an uninterrupted run would have seen.
    """
    if not shuffle:
        return np.arange(num_examples)
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _dataset_fn(files, index, weights, global_batch, image_size, augmentation=None):
    """A ``dataset_fn(input_context)`` for ``distribute_datasets_from_function``.

    ``index`` lists the files of the whole cluster's epoch in order (``len(index)`` is a
    multiple of ``global_batch``); ``weights`` is 1 for a real example, 0 for padding.
    Worker w keeps positions w, w + W, w + 2W, ... (W workers), so the union of the
    workers' k-th batches is positions [k * global_batch, (k + 1) * global_batch): the
    same global batches a single process would form from ``index``.
    """

    def dataset_fn(context):
        import tensorflow as tf

        from keras_notes.finetune.data import decode_image

        per_replica = context.get_per_replica_batch_size(global_batch)
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        batches = len(index) // global_batch * local_replicas
        dataset = tf.data.Dataset.from_tensor_slices((
            np.asarray(files.paths)[index], np.asarray(files.labels, np.int32)[index],
            np.asarray(files.needs_pil, bool)[index], np.asarray(files.orientation, np.int32)[index],
            np.asarray(weights, np.float32)))
        # Shard the file names, before decoding: each worker decodes only its own images.
        dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
        dataset = dataset.map(lambda path, label, pil, turn, weight: (decode_image(path, pil, image_size, turn),
                                                                      label, weight),
                              num_parallel_calls=tf.data.AUTOTUNE)
        # (per_replica, size, size, 3), (per_replica,), (per_replica,); exactly `batches` of them.
        dataset = dataset.batch(per_replica, drop_remainder=True).take(batches)
        if augmentation is not None:
            dataset = dataset.map(lambda images, labels, w: (augmentation(images, training=True), labels, w),
                                  num_parallel_calls=tf.data.AUTOTUNE)
        options = tf.data.Options()
        # The sharding above is by hand; say so, rather than rely on what a strategy does by default.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def _make_steps(strategy, model, optimizer, global_batch, num_classes):
    """``(train_step, eval_step)``: ``tf.function``s over one distributed batch, reduced to totals."""
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction=None)  # softmax outputs, integer labels
    SUM = tf.distribute.ReduceOp.SUM

    def replica_train(images, labels, weights):
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)  # (per_replica, num_classes)
            per_example = loss_fn(labels, probabilities)  # (per_replica,)
            # This replica's share of the global batch's mean: sum / global_batch.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        # In a replica context Keras 3's TensorFlow optimizer all-reduces (sums) the gradients
        # before updating the mirrored variables, so they are not summed here as well.
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return loss, tf.reduce_sum(tf.cast(predicted == labels, tf.float32))

    def replica_eval(images, labels, weights):
        probabilities = model(images, training=False)
        predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        confusion = tf.math.confusion_matrix(labels, predicted, num_classes, weights=weights, dtype=tf.float32)
        return (tf.reduce_sum(loss_fn(labels, probabilities) * weights),
                tf.reduce_sum(tf.cast(predicted == labels, tf.float32) * weights), confusion)

    @tf.function
    def train_step(batch):
        results = strategy.run(replica_train, args=batch)
        return [strategy.reduce(SUM, value, axis=None) for value in results]

    @tf.function
    def eval_step(batch):
        results = strategy.run(replica_eval, args=batch)
        return [strategy.reduce(SUM, value, axis=None) for value in results]

    return train_step, eval_step


def _agree(strategy, value):
    """The smallest ``value`` over all workers (each passes its own); a collective, so all must call it."""
    import tensorflow as tf

    per_replica = strategy.experimental_distribute_values_from_function(
        lambda context: tf.constant([value], tf.int64))
    return int(np.min(strategy.gather(per_replica, axis=0).numpy()))


def _checkpoint_epoch(path):
    """``.../ckpt-7`` -> 7: checkpoints are numbered by the epochs they complete."""
    return int(path.rsplit("-", 1)[1])


def _history_rows(history_var):
    return [{"epoch": epoch, **dict(zip(HISTORY_KEYS, map(float, values)))}
            for epoch, values in enumerate(history_var.numpy())]


def finish_multi_worker(strategy, result):
    """Wait until every worker gets here, then remove this worker's temporary folder.

    Call it on every worker once the chief has written its run files: until then each
    worker keeps its checkpoints, so a group restarted after a crash in the chief's
    final writes resumes at the last epoch instead of starting again from nothing.
    """
    _agree(strategy, 0)  # a collective: returns on each worker only when all have called it
    remove_write_dir(result.write_dir, result.task)


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
    worker in its temporary folder. At start every worker reads the epoch of its newest
    checkpoint, the workers agree on the smallest (a collective), and all restore that
    epoch's checkpoint, so a group restarted with the same ``TF_CONFIG`` and arguments
    resumes where every worker last got to. A completed run resumes at its end and only
    evaluates; train again in a new ``output_dir``.

    Every worker writes ``history.csv`` and its checkpoints to its ``write_dir``
    after each epoch; call ``finish_multi_worker`` at the end.
    """
    import keras
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    if keras.mixed_precision.dtype_policy().name != "float32":
        # Keras 3's LossScaleOptimizer tests the gradients for inf/NaN before the cross-replica
        # sum (which happens inside the inner optimizer), so replicas could take different
        # branches of its cond around a collective op. Refuse rather than risk a hang.
        raise KerasNotesError(f"multi-worker training runs in float32; received the dtype policy "
                              f"{keras.mixed_precision.dtype_policy().name!r}")
    replicas = strategy.num_replicas_in_sync
    if global_batch % replicas:
        raise KerasNotesError(f"the global batch must be a multiple of the {replicas} replicas; "
                              f"received global_batch={global_batch}")
    steps = steps_per_epoch(len(train_files), global_batch)
    val_steps = math.ceil(len(val_files) / global_batch)
    total_epochs = epochs + fine_tune_epochs
    if fine_tune_epochs and unfreeze_fn is None:
        raise KerasNotesError("fine_tune_epochs > 0 needs an unfreeze_fn for phase 2")
    optimizer_fn = optimizer_fn or (lambda rate: keras.optimizers.Adam(rate))
    phase_rates = (lr, fine_tune_lr if fine_tune_lr is not None else lr / 10)
    is_chief = task is None or task.is_chief
    folder = write_dir(output_dir, task)
    checkpoint_dir = os.path.join(folder, CHECKPOINT_DIR)
    os.makedirs(checkpoint_dir, exist_ok=True)

    keras.utils.set_random_seed(seed)  # the same initial weights and dropout masks on every start
    with strategy.scope():
        model = build_model_fn()
    # Plain (not mirrored) variables: each worker keeps its own copy; all hold the same values.
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    # (epochs done, len(HISTORY_KEYS)): the first dimension is left open so that a run extended
    # to more epochs than it was started with still restores its history.
    history_var = tf.Variable(np.zeros((0, len(HISTORY_KEYS))), dtype=tf.float64,
                              shape=tf.TensorShape([None, len(HISTORY_KEYS)]))

    def start_phase(phase):
        """Optimizer, steps and checkpoint manager for phase 0 (head) or 1 (unfrozen base)."""
        with strategy.scope():
            if phase == 1:
                unfreeze_fn(model)
            optimizer = optimizer_fn(phase_rates[phase])
            optimizer.build(model.trainable_variables)  # its variables, mirrored, before any tf.function
            # Compiled only so that callbacks find model.optimizer (TensorBoard logs its learning rate)
            # and the saved model records how it was trained; the steps below use neither.
            model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var, history=history_var)
        manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir, max_to_keep=KEEP_CHECKPOINTS)
        return _make_steps(strategy, model, optimizer, global_batch, num_classes) + (manager,)

    mine = tf.train.latest_checkpoint(checkpoint_dir)
    start = _agree(strategy, _checkpoint_epoch(mine) if mine else 0)
    if start > total_epochs:
        raise KerasNotesError(f"{checkpoint_dir} already holds {start} trained epochs, more than the "
                              f"{total_epochs} asked for; ask for at least {start} or use a new output folder")
    # A checkpoint saved at the end of phase 1 holds phase 1's optimizer: restore it into phase 1's
    # objects, and let the loop below switch to phase 2 as an uninterrupted run does.
    phase = 1 if fine_tune_epochs and start > epochs else 0
    train_step, eval_step, manager = start_phase(phase)
    if start:
        path = os.path.join(checkpoint_dir, f"ckpt-{start}")
        if not tf.io.gfile.exists(path + ".index"):
            raise KerasNotesError(f"the workers' checkpoints disagree: this worker has no checkpoint for epoch "
                                  f"{start} in {checkpoint_dir}; remove the run's checkpoints and start again")
        manager.checkpoint.restore(path).assert_existing_objects_matched()
        log(f"resuming from epoch {start} (checkpoint {path})")

    def evaluate():
        if not len(val_files):
            return math.nan, math.nan, None
        index = np.concatenate([np.arange(len(val_files)), np.zeros(val_steps * global_batch - len(val_files), int)])
        weights = np.arange(len(index)) < len(val_files)
        fn = _dataset_fn(val_files, index, weights, global_batch, image_size)
        iterator = iter(strategy.distribute_datasets_from_function(fn))
        totals = [0.0, 0.0, np.zeros((num_classes, num_classes))]
        for _ in range(val_steps):
            for i, value in enumerate(eval_step(next(iterator))):
                totals[i] = totals[i] + value.numpy()
        return totals[0] / len(val_files), totals[1] / len(val_files), totals[2].astype(np.int64)

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model)
    callback_list.on_train_begin()
    confusion = None
    for epoch in range(start, total_epochs):
        if epoch == epochs and phase == 0:  # phase 2 begins: unfreeze, new optimizer, new steps
            phase = 1
            train_step, eval_step, manager = start_phase(phase)
        began = time.perf_counter()
        callback_list.on_epoch_begin(epoch)
        index = epoch_order(len(train_files), seed, epoch, shuffle)[:steps * global_batch]
        fn = _dataset_fn(train_files, index, np.ones(len(index)), global_batch, image_size, augmentation)
        iterator = iter(strategy.distribute_datasets_from_function(fn))
        loss_sum = correct = 0.0
        for _ in range(steps):
            loss, hits = train_step(next(iterator))
            loss_sum, correct = loss_sum + float(loss), correct + float(hits)
        val_loss, val_accuracy, confusion = evaluate()
        row = (loss_sum / steps, correct / (steps * global_batch), val_loss, val_accuracy,
               time.perf_counter() - began)
        history_var.assign(np.vstack([history_var.numpy(), [row]]))
        epoch_var.assign(epoch + 1)
        manager.save(checkpoint_number=epoch + 1)  # on every worker: the chief's into the run folder
        # Rewritten whole from the checkpointed history, so a resumed run's file has every epoch once.
        runio.write_history(os.path.join(folder, runio.HISTORY_FILE), _history_rows(history_var))
        logs = dict(zip(HISTORY_KEYS, row))
        callback_list.on_epoch_end(epoch, logs)
        log(f"epoch {epoch + 1}/{total_epochs} - " + " - ".join(f"{k}: {v:.4f}" for k, v in logs.items()
                                                               if k != "seconds") + f" - {row[-1]:.1f}s")
    callback_list.on_train_end()
    # Evaluate again only if nothing was trained here, or the after-training step changed the model.
    changed = bool(after_training_fn(model)) if after_training_fn is not None else False
    if start == total_epochs or changed:
        confusion = evaluate()[2]
    return MultiWorkerResult(model, _history_rows(history_var), confusion, start, is_chief,
                             folder, task)
