"""Export a finished run to SavedModel, LiteRT (float, float16, dynamic, int8) or ONNX, each checked.

    keras-notes-export runs/digits --format litert --quantize int8      # also: saved_model, onnx, all

Every exported file is run on the run's own validation images and compared with model.keras:
accuracy, top-1 agreement, the largest probability difference, size and batch-1 latency go to
<run>/export/report.json and a printed table. A file that loses more accuracy than its gate
allows makes the command exit 1 (the files are kept); --allow-drop accepts it. The flags are
generated from keras_notes.finetune.export_config.ExportConfig. A bad request (not a finished
run, an unknown format, a missing package, int8 without the training images, an output that
cannot be written) is one line on stderr and exit status 2.
"""

import dataclasses
import os
import sys

from keras_notes.cli._common import config_from_args, config_parser, user_errors_exit_2
from keras_notes.finetune.export_config import ExportConfig

GATE_FAILED = 1


def build_parser():
    return config_parser("keras-notes-export", __doc__, ExportConfig)


def parse_args(argv=None):
    """The command line as an ``ExportConfig`` (validated: a bad value raises ``KerasNotesError``)."""
    return config_from_args(ExportConfig, build_parser().parse_args(argv))


@user_errors_exit_2
def main(argv=None):
    config = parse_args(argv)  # before importing TensorFlow: --help and bad values answer at once
    from keras_notes.finetune.export import export_run
    from keras_notes.finetune.fidelity import FidelityGateFailed

    options = {field.name: getattr(config, field.name) for field in dataclasses.fields(ExportConfig)
               if field.name not in ("run_dir", "format", "quantize")}
    try:
        export_run(config.run_dir, config.format, config.quantize, **options)
    except FidelityGateFailed as failure:
        print(f"{os.path.basename(sys.argv[0]) or 'keras-notes-export'}: {failure}", file=sys.stderr)
        return GATE_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
