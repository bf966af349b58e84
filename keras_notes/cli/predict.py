"""Top-k class predictions of a fine-tuned model for images or folders of images.

    keras-notes-predict MODEL IMAGE_OR_FOLDER... [--top-k 3] [--format csv|json] [--output FILE]

MODEL is a run folder (holding model.keras) or a file keras-notes-export wrote from one:
a .tflite file, an .onnx file or a SavedModel folder, each with its class names beside it.
Images are decoded and resized as in training, whatever the MODEL. A Keras model is loaded
with Keras's safe_mode on: a model file holding a Lambda layer is refused unless
--unsafe-load says the file is trusted. Output goes to stdout, or to FILE (written
atomically). A MODEL that is none of these is a one-line error, exit status 2.
"""

import argparse
import sys

from keras_notes.cli._common import user_errors_exit_2

FORMATS = ("csv", "json")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="keras-notes-predict", description=__doc__.splitlines()[0])
    parser.add_argument("model", metavar="MODEL",
                        help="run folder written by keras-notes-finetune (holds model.keras), or a .tflite, "
                             ".onnx or SavedModel folder written by keras-notes-export")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files, or folders searched recursively for images")
    parser.add_argument("--top-k", type=int, default=3, help="labels per image, best first (default: %(default)s)")
    parser.add_argument("--format", choices=FORMATS, default="csv", help="output format (default: %(default)s)")
    parser.add_argument("--output", default=None, help="write to this file instead of stdout")
    parser.add_argument("--unsafe-load", action="store_true",
                        help="load a Keras model with Keras's safe_mode off, running any Python code a Lambda "
                             "layer stored in it; use only for a model file you trust")
    return parser.parse_args(argv)


@user_errors_exit_2
def main(argv=None):
    args = parse_args(argv)
    from keras_notes.finetune.predict import predict

    text = predict(args.model, args.inputs, top_k=args.top_k, fmt=args.format, output=args.output,
                   unsafe_load=args.unsafe_load)
    if args.output is None:
        sys.stdout.write(text)
    else:
        print(f"predictions written to {args.output}", file=sys.stderr)
    return 0
