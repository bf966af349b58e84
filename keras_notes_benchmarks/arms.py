"""What a ``--mode`` is made of: its record (``Mode``), and the package's own arm, timed phase by phase.

An arm is ``arm(config, output, marks) -> (final validation accuracy, training images)``.
It runs in a child process (``race.run_arm``) whose clock has started: ``marks`` holds
``timed_start`` (``time.perf_counter()`` when the arm was called), and the arm sets
``trained`` (the end of its training) and ``timed_end``, and may move ``timed_start``
to where the span it is timed on begins.
"""

import contextlib
import dataclasses
import io
import time

from keras_notes_benchmarks.common import generated_folder


@dataclasses.dataclass(frozen=True)
class Mode:
    """One ``--mode``: two arms raced on the same images, and the words its summary uses."""

    arms: dict  # name -> arm, two of them: the baseline first, then the package
    help: str  # the --mode help for this mode
    headline: object  # config -> what is raced, for the first line: "phase 1: keras.io recipe vs package"
    timed: str  # the column of the timed span: "trained s"
    span: str  # what that span is: "start to the end of training"
    ratio: str  # the first ratio's label: "ratio to the end of training"
    epochs_field: str = "epochs"  # the config field that counts the timed span's epochs (for images/s)
    make_folder: object = generated_folder  # (root, config) -> the image folder, when there is no --data-dir
    after: object = None  # (config, say) -> lines printed under the table, measured after the race


def package_arm(config, output, marks, changes=None, cache=None, timed_phase=None):
    """``finetune`` with the package's defaults on ``config.data_dir``; -> (val accuracy, training images).

    ``changes``: ``FinetuneConfig`` fields the mode sets; ``cache=False`` streams every
    phase through the whole model; ``timed_phase``: the phase whose span is timed (None:
    from the start to the end of training). Nothing is kept across runs (``kept_cache``
    off unless ``changes`` turns it on): each run is a first run, as the reference's is.
    """
    from keras_notes.finetune import train
    from keras_notes.finetune.config import FinetuneConfig

    finetune_config = FinetuneConfig(config.data_dir, arch=config.arch, weights=config.base_weights,
                                     freeze_base=True, image_size=config.image_size, batch_size=config.batch_size,
                                     epochs=config.epochs, val_split=config.val_split, seed=config.seed,
                                     output=output, verbose=0, cache=cache,
                                     **{"kept_cache": False, **(changes or {})})
    # Marks at the start and end of each phase: the "trained" mark ends where training does,
    # before the evaluation, the saved model and the plots that the reference recipe does not make.
    original = train.run_phase

    def timed_run_phase(model, config, run_dir, splits, val_data, phase, *args, **kwargs):
        marks[f"phase{phase}_start"] = time.perf_counter()
        result = original(model, config, run_dir, splits, val_data, phase, *args, **kwargs)
        marks["trained"] = marks[f"phase{phase}_end"] = time.perf_counter()
        marks["train_images"] = len(splits.train)  # the run's own split: no second scan inside the timing
        return result

    train.run_phase = timed_run_phase
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own report is not the benchmark's
            result = train.finetune_one_machine(finetune_config)
    finally:
        train.run_phase = original
    if timed_phase is None:
        marks["timed_end"] = marks["trained"]
    else:
        marks["timed_start"], marks["timed_end"] = marks[f"phase{timed_phase}_start"], marks[f"phase{timed_phase}_end"]
    return result.history[-1]["val_accuracy"], marks["train_images"]
