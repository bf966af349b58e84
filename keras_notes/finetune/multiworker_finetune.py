"""``finetune_multi_worker(config)``: the fine-tuning run for ``--strategy multi-worker``.

Run by every worker of a cluster described by ``TF_CONFIG`` (see ``cluster``), with
the same arguments. It produces the same run folder as a single-machine run (model,
config, class names, history, evaluation, plots), written by the chief alone; the
training itself is ``multiworker.train_multi_worker``'s custom loop, because Keras
3's ``fit`` fails under ``MultiWorkerMirroredStrategy``.

Differences from the single-machine run, each for a reason:

- ``--output`` is required: every worker must name the same run folder, and a
  restarted worker must find it again (a default ``runs/<timestamp>`` differs per process);
- a run folder that already holds this run is continued without ``--resume``: restarting
  the group with the same command is how a multi-worker run recovers from a failure;
- training runs in float32 (see ``multiworker.train_multi_worker``);
- ``label_smoothing`` is refused: the custom loop's steps use the plain sparse cross-entropy;
- the last ``len(train) % batch_size`` images of each epoch's shuffled order are
  left out of that epoch, so that every worker runs the same number of full steps.
"""

import dataclasses
import os

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio
from keras_notes.finetune.cluster import make_multi_worker_strategy, read_tf_config, write_dir

STRATEGY_NAME = "multi-worker"


def _report_from_confusion(matrix, class_names):
    """``evaluate.evaluation_report`` from a confusion matrix: its (true, predicted) pairs, each repeated."""
    from keras_notes.finetune.evaluate import evaluation_report

    matrix = np.asarray(matrix, dtype=np.int64)
    pairs = np.repeat(np.arange(matrix.size), matrix.ravel())  # flat index t * k + p, once per image
    true, predicted = np.divmod(pairs, len(class_names))
    return evaluation_report(true, predicted, class_names)


def finetune_multi_worker(config):
    """Run ``config`` (a ``FinetuneConfig``) as this process's part of the cluster in ``$TF_CONFIG``."""
    task = read_tf_config()
    if config.output is None:
        raise KerasNotesError("--strategy multi-worker needs --output: every worker must write to (and a "
                              "restarted worker find) the same run folder; received output=None")
    if config.precision == "mixed_float16":
        raise KerasNotesError("multi-worker training runs in float32; received precision='mixed_float16'")
    if config.label_smoothing:  # the custom loop's steps (multiworker_steps) use the plain sparse loss
        raise KerasNotesError(f"multi-worker training does not apply label smoothing; train on one machine or "
                              f"drop it; received label_smoothing={config.label_smoothing!r}")
    # The strategy before any other TensorFlow op: collective ops are configured once, at start-up.
    strategy = make_multi_worker_strategy()

    from keras_notes.finetune.data import load_splits, make_augmentation
    from keras_notes.finetune.models import build_model, unfreeze
    from keras_notes.finetune.multiworker import finish_multi_worker, train_multi_worker
    from keras_notes.finetune.results import (TENSORBOARD_MISSING, FinetuneResult, recalibrate_trained_batch_norm,
                                              say, tensorboard_available, write_report)
    from keras_notes.finetune.strategy import check_batch_size
    from keras_notes.finetune.weights import resolve_weights

    config = dataclasses.replace(config.resolve(), strategy=STRATEGY_NAME, precision="float32")
    resolve_weights(config.arch, config.weights)
    splits = load_splits(config.data_dir, config.val_dir, config.val_split, config.seed,
                         ignore_exif=config.ignore_exif)
    class_names = splits.class_names
    per_replica = check_batch_size(config.batch_size, strategy)

    run_dir = config.output
    continuing = os.path.isfile(os.path.join(run_dir, runio.CONFIG_FILE))
    if task.is_chief:
        runio.prepare_run_dir(run_dir, resume=continuing or config.resume, lock=True)
        if continuing:
            runio.check_resume(run_dir, config, class_names)
            previous = runio.read_json(os.path.join(run_dir, runio.CONFIG_FILE)).get("strategy")
            if previous != STRATEGY_NAME:  # its checkpoints are BackupAndRestore's, not this loop's
                raise KerasNotesError(f"{run_dir!r} was trained with strategy {previous!r}; continue it with "
                                      f"that strategy, or give multi-worker training a new --output")
        runio.write_start(run_dir, config, splits)
        say(f"{'continuing run folder' if continuing else 'run folder'}: {run_dir}")
    else:
        say(f"{task.name} writes to {write_dir(run_dir, task)} (removed at the end); the chief writes {run_dir}")
    say(f"data: {len(class_names)} classes, {len(splits.train)} training and {len(splits.val)} validation "
         f"images; this worker decodes shard {task.worker_id} of {task.num_workers}")
    for line in splits.orientation_report():
        say(line)
    say(f"strategy: multi-worker over {strategy.num_replicas_in_sync} replica(s) on {task.num_workers} "
         f"worker(s); batch {config.batch_size} ({per_replica} per replica); precision float32")

    def build():
        return build_model(config.arch, len(class_names), weights=config.weights, image_size=config.image_size,
                           dropout=config.dropout, freeze_base=config.freeze_base,
                           hidden_units=config.hidden_units)

    def recalibrate(model):
        # Every worker runs the same pass over the same (unsharded) images in the same seeded
        # shuffled order, so the replicas stay equal. Nonzero: the model changed, so the final
        # evaluation runs again.
        return recalibrate_trained_batch_norm(model, config, splits, say=say)

    callbacks = []
    if tensorboard_available():  # each worker logs to its own write folder; the chief's is the run's logs/
        import keras

        callbacks.append(keras.callbacks.TensorBoard(os.path.join(write_dir(run_dir, task), runio.LOG_DIR)))
    else:
        say(TENSORBOARD_MISSING)

    result = train_multi_worker(
        build, splits.train, splits.val, len(class_names), config.image_size, config.batch_size, config.epochs,
        config.lr, run_dir, seed=config.seed, augmentation=make_augmentation(config.augment, config.seed),
        fine_tune_epochs=config.fine_tune_epochs, fine_tune_lr=config.fine_tune_lr,
        unfreeze_fn=lambda model: unfreeze(model, top_n=config.unfreeze_top_n, from_layer=config.unfreeze_from),
        after_training_fn=recalibrate, callbacks=callbacks, strategy=strategy, task=task, log=say)

    evaluation = None
    if task.is_chief:
        runio.save_model(result.model, os.path.join(run_dir, runio.MODEL_FILE))
        evaluation = _report_from_confusion(result.confusion, class_names)
        write_report(run_dir, config, class_names, result.history, evaluation, say=say)
    finish_multi_worker(strategy, result)
    return FinetuneResult(run_dir, config, tuple(class_names), tuple(result.history), evaluation)
