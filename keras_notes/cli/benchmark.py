"""Time phase 1 of the keras.io fine-tuning recipe against the package's cached path, side by side.

    keras-notes-benchmark --images 512 --image-size 224 --epochs 10 --repeats 3

Generates the images (or takes ``--data-dir``), warms up, then runs the two arms
alternately, each in its own process, and prints the median wall time, images per
second, peak resident memory and final validation accuracy of each, and their ratio.
"""

import argparse
import dataclasses

from keras_notes.cli._common import user_errors_exit_2
from keras_notes.finetune.benchmark import BenchmarkConfig

HELP = {
    "data_dir": "image folder with one sub-folder per class (default: generate --images images)",
    "images": "images to generate, split evenly over --classes",
    "classes": "classes to generate",
    "image_size": "side of the square input in pixels",
    "arch": "base architecture",
    "epochs": "phase 1 (head) epochs",
    "batch_size": "batch size",
    "val_split": "fraction held out for validation",
    "repeats": "timed runs of each arm",
    "warmup": "run each arm once for one epoch first, not counted",
    "seed": "seed for the data, the split and the initialisation",
}


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-notes-benchmark", description=__doc__.splitlines()[0])
    for field in dataclasses.fields(BenchmarkConfig):
        flag = "--" + field.name.replace("_", "-")
        if isinstance(field.default, bool):
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default,
                                help=f"{HELP[field.name]} (default: %(default)s)")
        else:
            kind = str if field.name in ("data_dir", "arch") else type(field.default)
            parser.add_argument(flag, dest=field.name, type=kind, default=field.default,
                                help=f"{HELP[field.name]} (default: %(default)s)")
    return parser


def parse_args(argv=None):
    """The command line as a ``BenchmarkConfig``."""
    config = BenchmarkConfig(**vars(build_parser().parse_args(argv)))
    for name in ("images", "classes", "image_size", "epochs", "batch_size", "repeats"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1; received {name}={getattr(config, name)!r}")
    return config


@user_errors_exit_2
def main(argv=None):
    config = parse_args(argv)
    from keras_notes.finetune.benchmark import format_summary, run_benchmark

    print(f"benchmark: {config.arch} at {config.image_size} px, {config.epochs} epochs, batch {config.batch_size}, "
          f"{'folder ' + config.data_dir if config.data_dir else f'{config.images} generated images'}", flush=True)
    print(format_summary(run_benchmark(config)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
