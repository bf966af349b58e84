"""Top-k class predictions of a fine-tuned run's model for images or folders of images.

    keras-notes-predict RUN_DIR IMAGE_OR_FOLDER... [--top-k 3] [--format csv|json] [--output FILE]

The model is loaded with Keras's safe_mode on: a model file holding a Lambda layer is
refused unless --unsafe-load says the file is trusted. Output goes to stdout, or to FILE
(written atomically). A RUN_DIR without a model is a one-line error, exit status 2.
"""

import argparse
import sys

from keras_notes.cli._common import user_errors_exit_2

FORMATS = ("csv", "json")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="keras-notes-predict", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="run folder written by keras-notes-finetune (holds model.keras)")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders searched recursively for images")
    parser.add_argument("--top-k", type=int, default=3, help="labels per image, best first (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default: %(default)s)")
    parser.add_argument("--output", default=None, help="write to this file instead of stdout")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="load the model with Keras's safe_mode off, running any Python code a Lambda "
                             "layer stored in it; use only for a model file you trust")
    return parser.parse_args(argv)


@user_errors_exit_2
def main(argv=None):
    args = parse_args(argv)
    from keras_notes.finetune.predict import predict

    text = predict(args.run_dir, args.inputs, top_k=args.top_k, fmt=args.format, output=args.output,
                   unsafe_load=args.unsafe_load)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"predictions written to {args.output}", file=sys.stderr)
    return 0
