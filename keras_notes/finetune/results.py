"""What both training paths share at the end of a run: the result, the report, batch-norm recalibration.

``train`` (one machine, ``fit``) and ``multiworker_finetune`` (a cluster, a custom loop)
both import from here and from nowhere in each other, so neither training path
depends on the other; ``run.finetune`` picks one.
"""

import dataclasses
import importlib.util
import os

from keras_notes.finetune import runio
from keras_notes.finetune.data import make_dataset
from keras_notes.finetune.evaluate import format_class_table
from keras_notes.finetune.figures import FigureWorker
from keras_notes.finetune.models import recalibrate_batch_norm, trainable_batch_norm_layers
from keras_notes.report import format_table

# A bound on the extra pass that re-estimates trained batch-norm statistics: 200 batches
# of 32 is 6,400 images, plenty for a mean and a variance per channel.
RECALIBRATION_BATCHES = 200


@dataclasses.dataclass(frozen=True)
class FinetuneResult:
    """What a run leaves behind: its folder, resolved config, every epoch's metrics, the evaluation."""

    run_dir: str
    config: object  # the resolved FinetuneConfig, as written to config.json
    class_names: tuple
    history: tuple  # one dict per epoch, both phases (runio.read_history)
    evaluation: dict  # evaluate.evaluation_report on the validation set


def say(message):
    print(message, flush=True)


def plural(count, noun):
    """``"1 epoch"``, ``"5 epochs"``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def tensorboard_available():
    """TensorFlow 2.21 no longer pulls in the ``tensorboard`` package that writing summaries needs."""
    return importlib.util.find_spec("tensorboard") is not None


TENSORBOARD_MISSING = "TensorBoard logs skipped: the tensorboard package is not installed (pip install tensorboard)"


def recalibrate_trained_batch_norm(model, config, splits, say=say):
    """Re-estimate the moving statistics of the batch-norm layers training changed; -> how many.

    Over the training images without augmentation, shuffled: batches drawn from one class
    only would miss the variance between classes (measured on MobileNet from scratch: 0.889
    validation accuracy with class-sorted batches against 0.925 with shuffled ones).
    """
    if not trainable_batch_norm_layers(model):
        return 0  # a frozen base: nothing to re-estimate, and no image pipeline to build (~1 s)
    plain_train = make_dataset(splits.train, config.image_size, config.batch_size, training=True, seed=config.seed)
    count = recalibrate_batch_norm(model, plain_train, max_batches=RECALIBRATION_BATCHES)
    if count:
        say(f"re-estimated the moving statistics of {count} trained batch-norm layers over "
            f"{min(len(splits.train), RECALIBRATION_BATCHES * config.batch_size)} training images")
    return count


def draw_curves(figures, run_dir, config, history):
    """Hand the training curves to ``figures`` (a ``figures.FigureWorker``)."""
    figures.draw("curves", history, os.path.join(run_dir, runio.CURVES_FILE),
                 phase2_start=config.epochs if config.fine_tune_epochs else None)


def write_report(run_dir, config, class_names, history, evaluation, say=say, figures=None):
    """A finished run's ``evaluation.json``, its two figures, and the printed summary.

    ``figures``: the run's ``FigureWorker``, already handed the curves (``draw_curves``,
    before the model is saved, which it draws alongside); this adds the confusion matrix
    and waits for both. None: both are drawn here.
    """
    runio.write_json(os.path.join(run_dir, runio.EVALUATION_FILE), evaluation)
    if figures is None:
        figures = FigureWorker()
        draw_curves(figures, run_dir, config, history)
    figures.draw("confusion", evaluation["confusion_matrix"], class_names, os.path.join(run_dir, runio.CONFUSION_FILE))
    figures.finish()
    say("\n" + format_history_table(history, config.epochs))
    say("\n" + format_class_table(evaluation))
    say(f"\nvalidation accuracy {evaluation['accuracy']:.4f}; run folder {run_dir}")


def format_history_table(history, phase1_epochs):
    """One line per epoch: phase, losses, accuracies and seconds."""
    keys = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")
    rows = [[row["epoch"] + 1, 1 if row["epoch"] < phase1_epochs else 2] + [row.get(key, "") for key in keys]
            for row in history]
    return format_table(["epoch", "phase", *keys], rows, align="rr" + "r" * len(keys))
