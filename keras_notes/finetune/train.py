"""``finetune_one_machine(config)``: the two-phase fine-tuning run on one machine, from image folder to run folder.

Phase 1 trains the new head on a frozen base (or, with random weights, the whole
model); optional phase 2 unfreezes the top of the base and continues at a lower
learning rate, numbering its epochs after phase 1's. The batch-norm layers of a
frozen base, and those ``unfreeze`` leaves frozen in phase 2, run in inference mode
on their moving statistics, which therefore never change. A base trained from random
weights trains its batch-norm layers too; their moving statistics are re-estimated
over the training images at the end (``models.recalibrate_batch_norm``), because the
model is saved, evaluated and used in inference mode.

Resuming rests on Keras's ``BackupAndRestore``: one backup folder per phase under
``checkpoints/``, written after every epoch with the weights, the optimizer state
and the epoch number, and kept after the phase ends so that ``--resume`` can also
extend a finished run. A phase that is already complete restores and trains zero
epochs, which brings the model to where the next phase starts.
"""

import dataclasses
import functools
import os
import sys
import textwrap
import time

import keras

from keras_notes.errors import KerasNotesError
from keras_notes.losses import loss_for
from keras_notes.saving_memo import memoize_saving_skipsets
from keras_notes.finetune import cache, guards, runio
from keras_notes.finetune.data import load_splits, make_dataset, make_eval_dataset
from keras_notes.finetune.evaluate import evaluate_model
from keras_notes.finetune.figures import FigureWorker
from keras_notes.finetune.kept import scan_memo_dir
from keras_notes.finetune.models import build_model, first_trained_layer, get_base, unfreeze
from keras_notes.finetune.results import (TENSORBOARD_MISSING, FinetuneResult, draw_curves, plural,
                                          recalibrate_trained_batch_norm, say, tensorboard_available, write_report)
from keras_notes.finetune.scan import format_skipped
from keras_notes.finetune.strategy import (check_batch_size, describe_strategy, make_strategy,
                                           precision_policy, resolve_precision, strategy_name)
from keras_notes.finetune.weights import resolve_weights


SKIPPED_SHOWN = 10  # skipped files printed at the start; all of them go to skipped_files.json
class EpochTimer(keras.callbacks.Callback):
    """Adds ``seconds`` (wall time of the epoch, validation included) to the epoch's logs.

    Placed before ``CSVLogger`` so that the time lands in ``history.csv``.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["seconds"] = time.perf_counter() - self._start


def resolve_verbose(verbose):
    """Keras ``fit`` verbosity: progress bars (1) at a terminal, one line per epoch (2) in CI or a pipe."""
    if verbose != "auto":
        return verbose
    return 1 if sys.stdout.isatty() and not os.environ.get("CI") else 2


def compile_model(model, lr, label_smoothing=0.0, steps_per_execution=1):
    """Adam at ``lr`` with sparse categorical cross-entropy, smoothed by ``label_smoothing``
    (``keras_notes.losses``); call inside the strategy's scope. ``steps_per_execution``: as
    ``Model.compile`` takes it (the sweep's heads run a whole epoch per call)."""
    model.compile(optimizer=keras.optimizers.Adam(lr), loss=loss_for(label_smoothing), metrics=["accuracy"],
                  steps_per_execution=steps_per_execution)


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """``TensorBoard`` at its default ``update_freq="epoch"``, without its per-batch summary calls.

    At that frequency no summary writer is set during a batch, so the stock callback's
    ``summary.scalar`` for each batch's logs writes nothing, yet costs two TensorFlow calls
    per batch (about 0.5 s of 10 head epochs on kept outputs, a third of a rerun's fit
    after tracing). The event files are the same (``tests/test_finetune_train.py``).
    """

    def on_train_batch_end(self, batch, logs=None):
        if self.update_freq == "epoch" and not self.write_steps_per_second:
            logs = None  # the graph and the profiler, which do not read the logs, still run
        super().on_train_batch_end(batch, logs)


def phase_callbacks(run_dir, phase, append):
    """The callbacks of one phase: timing, guard, backup (for resume), CSV history and TensorBoard."""
    callbacks = [
        EpochTimer(),
        # Before the backup: a signal or a NaN loss stops fit before an unfinished or NaN
        # epoch is backed up (guards.py says why raising beats model.stop_training).
        guards.TrainingGuard(run_dir),
        # History before backup: a kill between the two leaves an epoch logged but not backed
        # up, which resume trains and logs again (read_history keeps the later row), rather
        # than one backed up but never logged.
        keras.callbacks.CSVLogger(os.path.join(run_dir, runio.HISTORY_FILE), append=append),
        # Each backup file is written whole under a temporary name, then renamed (guards.py).
        guards.AtomicBackupAndRestore(os.path.join(run_dir, runio.CHECKPOINT_DIR, f"phase{phase}"),
                                      delete_checkpoint=False),
    ]
    if tensorboard_available():
        callbacks.append(EpochTensorBoard(os.path.join(run_dir, runio.LOG_DIR)))
    return callbacks


def build_training_state(model, data):
    """Create the optimizer's and the metrics' variables before ``fit`` traces its step.

    Under a ``tf.distribute`` strategy Keras does this itself (``Trainer._symbolic_build``,
    on symbolic tensors); without one it defers it to the first trace of the train step,
    which then creates variables, and ``tf.function`` traces the step a second time to run
    it without creating them. Building here first, from ``data``'s element spec (no batch is
    read), leaves one trace: 0.3-0.5 s less of a rerun's head training on a 2-core CPU,
    more for a whole model. The variables start at the values the first trace would give
    them (zeros), so training is unchanged bit for bit (the cached-vs-uncached tests).
    """
    build = getattr(model, "_symbolic_build", None)  # Keras 3's own; absent elsewhere, fit builds as before
    if build is not None:
        with model.distribute_strategy.scope():
            build(data_batch=data.element_spec)


def train_phase(model, train_data, val_data, epochs, initial_epoch, callbacks, verbose=2):
    """``model.fit`` from ``initial_epoch`` up to epoch ``epochs`` (both counted over all phases)."""
    build_training_state(model, train_data)
    memoize_saving_skipsets()  # the backup saves the model after every epoch
    # BackupAndRestore leaves the epoch it restored on the model, where the next
    # fit would start from it; clear it so each phase starts from its own epoch.
    model._initial_epoch = None
    # shuffle=False: the training dataset shuffles itself (seeded); fit cannot shuffle a dataset.
    return model.fit(train_data, validation_data=val_data, epochs=epochs, initial_epoch=initial_epoch,
                     callbacks=callbacks, verbose=verbose, shuffle=False)


def finetune_one_machine(config):
    """Run ``config`` (a ``FinetuneConfig``) on this machine's devices; -> a ``FinetuneResult``.

    ``run.finetune`` is the entry that also takes ``--strategy multi-worker``.
    """
    if config.strategy == "multi-worker":
        raise KerasNotesError("multi-worker runs take keras_notes.finetune.run.finetune (a custom loop); "
                              "received strategy='multi-worker'")
    config = config.resolve()
    resolve_weights(config.arch, config.weights)  # a missing weights file fails before anything is done
    keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow: init and dropout repeat
    strategy = make_strategy(config.strategy)
    per_replica = check_batch_size(config.batch_size, strategy)
    precision = resolve_precision(config.precision, strategy)
    config = dataclasses.replace(config, strategy=strategy_name(strategy), precision=precision,
                                 cache=cache.resolve_cache(config, strategy.num_replicas_in_sync))
    # A cached run decodes every image in its frozen pass, which judges the JPEGs: the scan
    # reads their headers only, instead of decoding each a second time (RunCache.prepare).
    # With the kept cache, the scan also reuses the checks of files unchanged since the last run.
    splits = load_splits(config.data_dir, config.val_dir, config.val_split, config.seed,
                         ignore_exif=config.ignore_exif, defer_jpeg=config.cache,
                         memo_dir=scan_memo_dir(config))
    run_dir = runio.prepare_run_dir(config.output, resume=config.resume, lock=True)
    if config.resume:
        runio.check_resume(run_dir, config, splits.class_names)

    # Started first, to import matplotlib while the model is built: it draws the figures at
    # the end while the model is saved (figures.py).
    with FigureWorker.start() as figures:
        return _train_and_report(config, strategy, per_replica, splits, run_dir, figures)


def _train_and_report(config, strategy, per_replica, splits, run_dir, figures):
    """Build, train and evaluate ``config``'s model; write the run folder; -> a ``FinetuneResult``."""
    # Built before anything is written, so that weights that cannot be had (offline
    # "imagenet", a file that does not fit) leave no half-started run folder behind.
    with strategy.scope(), precision_policy(config.precision):
        model = build_model(config.arch, len(splits.class_names), weights=config.weights,
                            image_size=config.image_size, dropout=config.dropout, freeze_base=config.freeze_base,
                            hidden_units=config.hidden_units)
        compile_model(model, config.lr, config.label_smoothing)
    _write_start(run_dir, config, splits)
    say(f"strategy: {describe_strategy(strategy)}; batch {config.batch_size} "
         f"({per_replica} per replica); precision {config.precision}")
    say(_describe_base(config, model))

    with cache.RunCache(config, run_dir, splits, say=say, strategy=strategy) as kept:  # kept outputs live until the evaluation
        # Phase 2's cut, known before phase 1 so that phase 1's pass can keep its outputs too.
        phase2_first = (first_trained_layer(model, config.unfreeze_top_n, config.unfreeze_from)
                        if config.fine_tune_epochs else None)
        splits = _judge_deferred(run_dir, config, kept, model, phase2_first)
        # Built on first use: a cached run trains and evaluates on kept outputs and never needs
        # it (building the image pipeline, autograph included, took about 1 s).
        val_data = functools.cache(lambda: make_eval_dataset(splits.val, config.image_size, config.batch_size,
                                                             replicas=strategy.num_replicas_in_sync))
        cached = _train_phases(model, config, strategy, run_dir, splits, val_data, kept, phase2_first)

        if recalibrate_trained_batch_norm(model, config, splits):
            cached = None  # the frozen part's statistics changed: its kept outputs are stale
        # With the last phase cached, its model on the kept validation outputs predicts what the
        # whole model predicts on the images, without running the frozen part again.
        evaluated = (model, val_data()) if cached is None else (cached.model, cached.val)
        return _write_results(run_dir, config, splits.class_names, model, evaluated, splits.val.labels, figures)


def _write_start(run_dir, config, splits):
    """Write what is known before training to the run folder, and say what the data is."""
    runio.write_start(run_dir, config, splits)
    say(f"{'resuming' if config.resume else 'run folder'}: {run_dir}")
    say(f"data: {len(splits.class_names)} classes, {len(splits.train)} training and {len(splits.val)} "
         f"validation images, {len(splits.skipped)} files skipped (listed in {runio.SKIPPED_FILE})")
    if splits.skipped:
        say(textwrap.indent(format_skipped(splits.skipped, SKIPPED_SHOWN), "  skipped "))
    for line in splits.orientation_report(SKIPPED_SHOWN):
        say(line)


def _judge_deferred(run_dir, config, kept, model, phase2_first):
    """Judge the JPEGs the scan only read the headers of (``RunCache.prepare``); -> the run's splits.

    When some cannot be decoded, they join the skipped files, the rest are split again, and
    the start files are written anew.
    """
    splits = kept.prepare(model, phase2_first)
    if kept.damaged:
        runio.write_start(run_dir, config, splits)
        say(f"data: {plural(len(kept.damaged), 'more file')} skipped, undecodable; now {len(splits.train)} "
            f"training and {len(splits.val)} validation images (listed in {runio.SKIPPED_FILE})")
        say(textwrap.indent(format_skipped(kept.damaged, SKIPPED_SHOWN), "  skipped "))
    return splits


def _train_phases(model, config, strategy, run_dir, splits, val_data, kept, phase2_first=None):
    """Phase 1, then phase 2 if asked; epochs are numbered across both.

    -> the last phase's ``cache.CachedPhase`` or None. ``kept`` is the run's ``cache.RunCache``;
    ``phase2_first`` is the first layer phase 2 will train.
    """
    verbose = resolve_verbose(config.verbose)
    if not tensorboard_available():
        say(TENSORBOARD_MISSING)
    say(f"phase 1: {plural(config.epochs, 'epoch')} at lr {config.lr:g}")
    cached = run_phase(model, config, run_dir, splits, val_data, 1, config.epochs, kept, verbose, phase2_first)
    if not config.fine_tune_epochs:
        return cached
    with strategy.scope():
        count = unfreeze(model, top_n=config.unfreeze_top_n, from_layer=config.unfreeze_from)
        compile_model(model, config.fine_tune_lr, config.label_smoothing)
    say(f"phase 2: {plural(config.fine_tune_epochs, 'epoch')} at lr {config.fine_tune_lr:g} with {count} base "
         f"layers trainable (batch norm stays frozen, in inference mode)")
    return run_phase(model, config, run_dir, splits, val_data, 2, config.epochs + config.fine_tune_epochs, kept,
                     verbose)


def run_phase(model, config, run_dir, splits, val_data, phase, epochs, kept, verbose=2, next_first_trained=None):
    """Train one phase up to epoch ``epochs``, on the frozen part's kept output where ``config.cache`` allows.

    Each phase shuffles its training images with its own seed (``config.seed + phase - 1``),
    cached or not, so that a cached phase sees the batches the uncached one would.
    A cached phase fits the part above the frozen one (``kept.phase``, a
    ``cache.RunCache``) and backs it up in its own folder. ``val_data()`` gives the validation
    images' dataset, for an uncached phase. -> the ``cache.CachedPhase``, or None.
    """
    seed = config.seed + phase - 1
    initial_epoch = 0 if phase == 1 else config.epochs
    append = config.resume or phase > 1
    cached = kept.phase(model, phase, seed, next_first_trained)
    if cached is not None:
        train_phase(cached.model, cached.train, cached.val, epochs, initial_epoch,
                    phase_callbacks(run_dir, cache.backup_phase(phase), append), verbose)
        return cached
    train_data = make_dataset(splits.train, config.image_size, config.batch_size, training=True, seed=seed,
                              augment=config.augment)
    train_phase(model, train_data, val_data(), epochs, initial_epoch, phase_callbacks(run_dir, phase, append),
                verbose)
    return None


def _describe_base(config, model):
    base = get_base(model)
    trainable = sum(int(keras.ops.size(weight)) for weight in model.trainable_weights)
    state = "trainable" if base.trainable else "frozen"
    line = (f"model: {config.arch} at {config.image_size} px, base {state}; "
            f"{model.count_params():,} parameters, {trainable:,} trainable")
    if config.weights is None:
        line += ("\nweights=None: the base starts from random weights and is trained with the head"
                 if base.trainable else
                 "\nweights=None with freeze_base: the head trains on a frozen random base")
    return line


def _write_results(run_dir, config, class_names, model, evaluated, val_labels, figures):
    """Tidy the history, save the model, evaluate ``evaluated`` = (model, its validation data), plot, print.

    ``figures`` (a ``figures.FigureWorker``) draws the curves while the model is saved.
    """
    history_path = os.path.join(run_dir, runio.HISTORY_FILE)
    history = runio.read_history(history_path)
    runio.write_history(history_path, history)  # drops rows a crash left duplicated
    draw_curves(figures, run_dir, config, history)
    runio.save_model(model, os.path.join(run_dir, runio.MODEL_FILE))

    evaluation = evaluate_model(*evaluated, val_labels, class_names)
    write_report(run_dir, config, class_names, history, evaluation, figures=figures)
    return FinetuneResult(run_dir, config, tuple(class_names), tuple(history), evaluation)
