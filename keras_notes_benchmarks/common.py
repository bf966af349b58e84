"""What every benchmark measurement shares: child processes, peak memory, the generated images and base.

Each run is a child process (``run_child``), so that its peak resident memory is its own
and no run inherits another's TensorFlow state; ``python -m keras_notes_benchmarks.child``
is that process.
"""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np

from keras_notes.errors import KerasNotesError

RESULT_PREFIX = "BENCHMARK_RESULT "  # the child's last line: this prefix, then JSON
CALIBRATION_BATCHES = 8  # batches of images over which the base's batch-norm statistics are measured
HEAD_LR = 1e-3  # Adam's default, the keras.io guide's for the new head


def make_benchmark_folder(root, images, classes=2, size=224, seed=0):
    """Write ``images`` PNGs (``images // classes`` per class) of noise tinted by class; -> ``root``."""
    from PIL import Image

    if classes < 2 or images < 2 * classes:
        raise KerasNotesError(f"need at least 2 classes and 2 images per class; received images={images}, "
                              f"classes={classes}")
    rng = np.random.default_rng(seed)
    for label in range(classes):
        folder = os.path.join(root, f"class_{label}")
        os.makedirs(folder, exist_ok=True)
        for index in range(images // classes):
            pixels = rng.integers(0, 100, (size, size, 3))
            pixels[..., label % 3] += 120
            Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(folder, f"{index:05d}.png"))
    return os.fspath(root)


def generated_folder(root, config):
    """The default image folder of a measurement: ``make_benchmark_folder`` sized by ``config``; -> ``root``."""
    return make_benchmark_folder(root, config.images, config.classes, config.image_size, config.seed)


def make_base_weights(path, config):
    """Save a random base whose batch-norm statistics are measured on ``config.data_dir``; -> ``path``.

    A random base keeps its initial moving statistics (mean 0, variance 1), far from its
    activations' real ones, and its pooled features then barely differ between images.
    """
    import keras

    from keras_notes.finetune.data import load_splits, make_dataset
    from keras_notes.finetune.models import build_model, recalibrate_batch_norm

    keras.utils.set_random_seed(config.seed)
    splits = load_splits(config.data_dir, val_split=config.val_split, seed=config.seed)
    model = build_model(config.arch, len(splits.class_names), weights=None, image_size=config.image_size,
                        freeze_base=False)
    batches = make_dataset(splits.train, config.image_size, min(config.batch_size, len(splits.train)),
                           training=True, seed=config.seed)
    recalibrate_batch_norm(model, batches, max_batches=CALIBRATION_BATCHES)
    model.get_layer("base").save_weights(path)
    return path


def prepare(config, scratch, make_folder=generated_folder):
    """``config`` with its image folder and base weights filled in (generated under ``scratch`` if None).

    ``make_folder(root, config) -> folder`` writes the images when there is no ``data_dir``.
    """
    if config.data_dir is None:
        config = dataclasses.replace(config, data_dir=make_folder(os.path.join(scratch, "images"), config))
    if config.base_weights is None:  # in a child: the parent stays small while the arms run
        path = os.path.join(scratch, "base.weights.h5")
        run_child("base_weights", {"path": path, "config": dataclasses.asdict(config)}, "base weights")
        config = dataclasses.replace(config, base_weights=path)
    return config


def keras_io_head(x, classes):
    """The keras.io guide's head on pooled features: Dropout(0.2) -> Dense(classes, softmax)."""
    import keras

    return keras.layers.Dense(classes, activation="softmax")(keras.layers.Dropout(0.2)(x))


def peak_rss_mib(status="/proc/self/status"):
    """This process's peak resident memory in MiB: ``VmHWM``, or ``ru_maxrss`` where there is no /proc.

    Not ``ru_maxrss`` on Linux: it survives ``exec``, so a child started from a large
    parent reports the parent's peak.
    """
    try:
        with open(status, encoding="ascii") as file:
            for line in file:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux, bytes on macOS


def run_child(job, arguments, what):
    """Run ``child.JOBS[job](**arguments)`` in a child process; -> the dict its result line carries."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    request = json.dumps({"job": job, "arguments": arguments})
    done = subprocess.run([sys.executable, "-m", "keras_notes_benchmarks.child", request], env=env,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise KerasNotesError(f"the {what} run failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])
