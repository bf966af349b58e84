"""Search a fine-tuning head's hyperparameters on the frozen base's output, then retrain the winner.

    keras-notes-sweep data/digits --arch mobilenet --weights none --image-size 32 --trials 4 --epochs 3

The flags are generated from the fields of ``keras_notes.finetune.sweep_config.SweepConfig``
(those it shares with a run are ``FinetuneConfig``'s own). The sweep folder (``--output``,
default ``runs/sweep-<timestamp>``) receives ``trials.csv``, ``sweep.json``, KerasTuner's
files under ``tuner/``, and ``best/``, the winner's ordinary run folder.
"""

import os
import sys

from keras_notes.cli._common import config_from_args, config_parser, user_errors_exit_2
from keras_notes.finetune.sweep_config import SweepConfig


def build_parser():
    return config_parser("keras-notes-sweep", __doc__, SweepConfig)


def parse_args(argv=None):
    """The command line as a ``SweepConfig`` (validated: a bad value raises ``KerasNotesError``)."""
    return config_from_args(SweepConfig, build_parser().parse_args(argv))


@user_errors_exit_2
def main(argv=None):
    config = parse_args(argv)  # before importing TensorFlow and KerasTuner: --help and bad values answer at once
    from keras_notes.finetune.guards import TrainingStopped
    from keras_notes.finetune.sweep import sweep

    try:
        sweep(config)
    except TrainingStopped as stop:  # a signal or a NaN loss in the winner's retraining
        print(f"{os.path.basename(sys.argv[0]) or 'keras-notes-sweep'}: {stop}", file=sys.stderr)
        return stop.exit_status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
