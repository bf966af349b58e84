"""Fine-tune a keras.applications base on an image folder (one sub-folder per class).

    keras-notes-finetune data/digits --arch vgg16 --weights none --image-size 32 --epochs 5 --lr 1e-4

The flags are generated from the fields of ``keras_notes.finetune.config.FinetuneConfig``
(``keras_notes.fields.option``: help text and parser beside each default), so the
command line and the library cannot drift apart. The run folder (``--output``, default ``runs/<timestamp>``) receives the
model, the resolved config, the history, the evaluation and the plots.
"""

import os
import sys

from keras_notes.cli._common import config_from_args, config_parser, user_errors_exit_2
from keras_notes.finetune.config import FinetuneConfig


def build_parser():
    return config_parser("keras-notes-finetune", __doc__, FinetuneConfig)


def parse_args(argv=None):
    """The command line as a ``FinetuneConfig`` (validated: a bad value raises ``KerasNotesError``)."""
    return config_from_args(FinetuneConfig, build_parser().parse_args(argv))


@user_errors_exit_2
def main(argv=None):
    config = parse_args(argv)  # before importing TensorFlow: --help and bad values answer at once
    from keras_notes.finetune.guards import TrainingStopped
    from keras_notes.finetune.run import finetune

    try:
        finetune(config)
    except TrainingStopped as stop:  # a signal or a NaN loss: one line, the backup is kept
        print(f"{os.path.basename(sys.argv[0]) or 'keras-notes-finetune'}: {stop}", file=sys.stderr)
        return stop.exit_status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
