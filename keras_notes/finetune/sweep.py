"""``sweep(config)``: search the head's hyperparameters on the frozen base's output, then retrain the winner.

Steps, for a ``SweepConfig``:

1. scan and split the folder as a run does (``data.load_splits``, same seed, same split);
2. run the frozen base once over the training and validation images and keep its
   pooled output (``frozen_outputs``), ``(n, c)`` float32: MobileNet, 4 KiB an image;
3. run KerasTuner's seeded search (``sweep_tuner``), each trial a head trained for
   ``epochs`` on those features, ranked by its best epoch's ``val_accuracy``;
4. print the trials best first and write them to ``trials.csv``;
5. retrain the winner as an ordinary run (``run.finetune``) into ``<output>/best``:
   ``model.keras`` that takes raw images, ``evaluation.json``, the plots;
6. write ``sweep.json``: the configuration, the search space, the trials and the winner.

The retraining keeps its last epoch, as every run does, where the trial was ranked by
its best one. It reads the frozen pass's outputs from the kept cache (``kept.py``), as a
later sweep or run on the same images does, unless ``kept_cache`` is off.
"""

import csv
import dataclasses
import io
import os
import time

from keras_notes.finetune import lock, runio
from keras_notes.finetune.results import say as print_line
from keras_notes.finetune.sweep_config import BEST_DIR
from keras_notes.report import format_table

TRIALS_FILE = "trials.csv"
SWEEP_FILE = "sweep.json"
COLUMNS = ("trial", "lr", "dropout", "hidden_units", "label_smoothing", "val_accuracy", "epoch", "val_loss",
           "seconds")
HEADERS = ("trial", "lr", "dropout", "hidden", "smoothing", "val_accuracy", "epoch", "val_loss", "seconds")


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep leaves behind: its folder, the trials best first, the winner's row and run."""

    output: str
    config: object  # the resolved SweepConfig, as sweep.json records it
    trials: tuple  # one dict per trial (COLUMNS), best first
    winner: dict  # trials[0]
    best: object  # the winner's results.FinetuneResult, in <output>/best
    seconds: dict  # "frozen_pass", "search", "retrain": wall seconds of each step
    train_images: int  # the split's training images, which every trial trained on


def frozen_outputs(finetune_config, splits, model, output, say=print_line):
    """The frozen base's pooled output over ``splits``: ``(splits, train_features, val_features)``.

    ``model`` is a compiled ``build_model`` model with its base frozen. The pass is the
    run's own (``cache.RunCache``): images the kept cache holds are read from it, the rest
    computed and added, and JPEGs the scan deferred are judged, so ``splits`` comes back
    without any the pass could not decode.
    """
    from keras_notes.finetune.cache import RunCache

    with RunCache(finetune_config, output, splits, say=say) as kept:
        features = kept.pooled_outputs(model)
        splits = kept.splits
        for path, reason in kept.damaged:
            say(f"  skipped {path}: {reason}")
    cut = len(splits.train)
    return splits, features[:cut], features[cut:]


def format_trials(rows):
    """The trials as the sweep prints them: one line per trial, best first."""
    return format_table(HEADERS, [[row[column] for column in COLUMNS] for row in rows],
                        align="l" + "r" * (len(HEADERS) - 1))


def trials_csv(rows):
    """``trials.csv``'s text: the ``COLUMNS``, one row per trial, best first, full precision."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def sweep(config, say=print_line):
    """Run the head sweep ``config`` (a ``SweepConfig``); -> a ``SweepResult``."""
    with lock.released_after():
        return _sweep(config.resolve(), say)


def _sweep(config, say):
    import keras
    import numpy as np

    from keras_notes.errors import KerasNotesError
    from keras_notes.finetune.data import load_splits
    from keras_notes.finetune.kept import scan_memo_dir
    from keras_notes.finetune.models import build_model
    from keras_notes.finetune.run import finetune
    from keras_notes.finetune.cache import feature_dataset
    from keras_notes.finetune.sweep_tuner import make_hypermodel, make_tuner, trial_rows
    from keras_notes.finetune.train import compile_model
    from keras_notes.finetune.weights import resolve_weights

    # The sweep's pass runs in float32 (the model is built outside any precision policy): its
    # kept outputs are keyed so, and the winner's run on a CPU, also float32, reads them.
    base_config = dataclasses.replace(config.finetune_config().resolve(), precision="float32")
    resolve_weights(config.arch, config.weights)  # a missing weights file fails before anything is written
    keras.utils.set_random_seed(config.seed)
    splits = load_splits(config.data_dir, config.val_dir, base_config.val_split, config.seed,
                         ignore_exif=config.ignore_exif, defer_jpeg=True,
                         memo_dir=scan_memo_dir(config))
    if os.path.isdir(config.output) and set(os.listdir(config.output)) - {lock.LOCK_FILE}:
        raise KerasNotesError(f"sweep folder already exists and is not empty: {config.output!r}; choose another "
                              f"--output")
    output = runio.prepare_run_dir(config.output, lock=True)
    classes = len(splits.class_names)
    say(f"sweep folder: {output}")
    say(f"data: {classes} classes, {len(splits.train)} training and {len(splits.val)} validation images")
    seconds = {}

    start = time.perf_counter()
    model = build_model(config.arch, classes, weights=config.weights, image_size=config.image_size,
                        freeze_base=True)
    compile_model(model, base_config.lr)
    splits, train_features, val_features = frozen_outputs(base_config, splits, model, output, say)
    seconds["frozen_pass"] = time.perf_counter() - start
    del model

    start = time.perf_counter()
    records = {}
    hypermodel = make_hypermodel(config, classes, train_features, np.asarray(splits.train.labels, np.int32))
    tuner = make_tuner(config, hypermodel, output, records)
    say(f"search: {config.tuner}, {config.trials} trials of {config.epochs} head epochs on "
        f"{train_features.shape[1:]} features")
    tuner.search(validation_data=feature_dataset(val_features, splits.val.labels, config.batch_size),
                 epochs=config.epochs, verbose=0, shuffle=False)
    rows = trial_rows(tuner, records)
    if not rows:
        raise KerasNotesError(f"no trial finished; KerasTuner's files are in {os.path.join(output, 'tuner')}")
    seconds["search"] = time.perf_counter() - start
    say(format_trials(rows))
    runio.write_text(os.path.join(output, TRIALS_FILE), trials_csv(rows))
    say(f"{len(rows)} trials in {seconds['search']:.1f} s after a {seconds['frozen_pass']:.1f} s frozen pass; "
        f"written to {os.path.join(output, TRIALS_FILE)}")

    winner = rows[0]
    chosen = {name: winner[name] for name in ("lr", "dropout", "hidden_units", "label_smoothing")}
    say(f"winner: trial {winner['trial']} ({', '.join(f'{k} {v:g}' for k, v in chosen.items())}); retraining it "
        f"into {os.path.join(output, BEST_DIR)}")
    start = time.perf_counter()
    best = finetune(config.finetune_config(**chosen))  # into <output>/best
    seconds["retrain"] = time.perf_counter() - start
    runio.write_json(os.path.join(output, SWEEP_FILE), {
        "config": config.to_dict(), "search_space": config.search_space(), "objective": "val_accuracy",
        "trials": rows, "winner": {"trial": winner["trial"], **chosen, "val_accuracy": winner["val_accuracy"]},
        "best_run": {"run_dir": best.run_dir, "val_accuracy": best.evaluation["accuracy"]}, "seconds": seconds})
    say(f"winner's run: {best.run_dir}, validation accuracy {best.evaluation['accuracy']:.4f}")
    return SweepResult(output, config, tuple(rows), winner, best, seconds, len(splits.train))
