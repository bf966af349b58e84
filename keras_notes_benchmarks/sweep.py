"""``--mode sweep``: a whole head sweep against 3 epochs of the keras.io recipe on the same images.

The reference arm is ``phase1``'s keras.io recipe (``image_dataset_from_directory`` ->
the frozen base -> pooling -> Dropout -> Dense, ``model.fit``) for ``--reference-epochs``
epochs; every image goes through the whole base in every epoch. The package arm is
``keras-notes-sweep``'s ``sweep``: ``--trials`` trials of ``--epochs`` head epochs on the
frozen base's output, computed in one pass, then the winner retrained as an ordinary
run (its own frozen pass, ``--epochs`` epochs, evaluation, ``model.keras``, plots). The
reference is timed to the end of its training, the sweep to the end of everything.
"""

import contextlib
import io
import statistics
import time

from keras_notes_benchmarks import phase1
from keras_notes_benchmarks.arms import Mode


def reference_arm(config, output, marks):
    """``phase1``'s keras.io recipe for ``config.reference_epochs`` epochs."""
    import dataclasses

    return phase1.reference_arm(dataclasses.replace(config, epochs=config.reference_epochs), output, marks)


def sweep_arm(config, output, marks):
    """``sweep`` over ``config.trials`` trials of ``config.epochs`` epochs; -> (winner's val accuracy, images).

    Each run starts from an empty kept cache of its own, so its frozen pass is timed; the
    winner's retraining then reads the pass's outputs from it, as a user's would.
    """
    from keras_notes.finetune.sweep import sweep
    from keras_notes.finetune.sweep_config import SweepConfig

    sweep_config = SweepConfig(config.data_dir, arch=config.arch, weights=config.base_weights,
                               image_size=config.image_size, batch_size=config.batch_size, epochs=config.epochs,
                               trials=config.trials, val_split=config.val_split, seed=config.seed, output=output,
                               verbose=0, cache_dir=f"{output}-kept")  # an empty kept cache: the pass is timed
    with contextlib.redirect_stdout(io.StringIO()):  # the sweep's own report is not the benchmark's
        result = sweep(sweep_config)
    marks["trained"] = marks["timed_end"] = time.perf_counter()
    seconds = result.seconds
    per_trial = statistics.median(row["seconds"] for row in result.trials)
    marks["details"] = (f"frozen pass {seconds['frozen_pass']:.1f} s, search {seconds['search']:.1f} s "
                        f"({len(result.trials)} trials, median {per_trial:.2f} s each), "
                        f"winner's retraining {seconds['retrain']:.1f} s")
    return result.best.evaluation["accuracy"], result.train_images


MODE = Mode(
    arms={"reference": reference_arm, "package": sweep_arm},
    help="a head sweep (trials, its frozen pass, the winner's retraining) against --reference-epochs epochs of "
         "the keras.io recipe",
    headline=lambda config: (f"sweep of {config.trials} trials x {config.epochs} head epochs vs "
                             f"{config.reference_epochs} epochs of the keras.io recipe"),
    timed="timed s",
    span="the reference to the end of its training, the sweep to the end of its winner's run",
    ratio="ratio of timed spans",
    epochs_field="reference_epochs",
)
