"""Fine-tune a keras.applications base on an image folder (one sub-folder per class).

    keras-notes-finetune data/digits --arch vgg16 --weights none --image-size 32 --epochs 5 --lr 1e-4

The flags are generated from the fields of ``keras_notes.finetune.config.FinetuneConfig``
(help text from each field's metadata), so the command line and the library cannot
drift apart. The run folder (``--output``, default ``runs/<timestamp>``) receives the
model, the resolved config, the history, the evaluation and the plots.
"""

import argparse
import dataclasses
import os
import sys

from keras_notes.cli._common import user_errors_exit_2
from keras_notes.finetune.config import FinetuneConfig


def _add_field(parser, field):
    """One argparse argument for one config field: positional, on/off switch, or typed option."""
    meta = field.metadata
    help_text = meta["help"] if "default" in meta["help"] else f"{meta['help']} (default: %(default)s)"
    if meta.get("positional"):
        parser.add_argument(field.name, type=meta["parse"], help=meta["help"])
    elif meta["parse"] is None:  # a boolean switch: --name / --no-name
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                            action=argparse.BooleanOptionalAction, default=field.default, help=help_text)
    else:
        options = {key: meta[key] for key in ("nargs", "choices") if key in meta}
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name, type=meta["parse"],
                            default=field.default, help=help_text, **options)


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-notes-finetune", description=__doc__.splitlines()[0])
    for field in dataclasses.fields(FinetuneConfig):
        _add_field(parser, field)
    return parser


def parse_args(argv=None):
    """The command line as a ``FinetuneConfig`` (validated: a bad value raises ``KerasNotesError``)."""
    args = build_parser().parse_args(argv)
    return FinetuneConfig(**vars(args))


@user_errors_exit_2
def main(argv=None):
    config = parse_args(argv)  # before importing TensorFlow: --help and bad values answer at once
    from keras_notes.finetune.guards import TrainingStopped
    from keras_notes.finetune.train import finetune

    try:
        finetune(config)
    except TrainingStopped as stop:  # a signal or a NaN loss: one line, the backup is kept
        print(f"{os.path.basename(sys.argv[0]) or 'keras-notes-finetune'}: {stop}", file=sys.stderr)
        return stop.exit_status
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
