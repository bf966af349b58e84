"""Phase 1 speed: the keras.io reference recipe against the package's cached path, side by side.

The reference arm is the keras.io "Transfer learning & fine-tuning" recipe (and the
TensorFlow MobileNetV2 tutorial's): ``image_dataset_from_directory`` -> the frozen base
called with ``training=False`` -> GlobalAveragePooling -> Dropout -> Dense, ``model.fit``;
every image goes through the whole base on every step of every epoch. The package arm is
``finetune(FinetuneConfig(...))`` with its defaults (phase 1 on cached features), and it
does more than training: it also scans the folder, evaluates, saves the model and plots.

Each run is a child process, so that each arm's peak resident memory (``ru_maxrss``) is
its own and neither inherits the other's TensorFlow state. The arms alternate, after a
warm-up pair (one epoch each) that fills the page cache with the images and lets the
CPU clock settle; the table quotes medians. Weights are random (``weights=None``): the
compute is that of ImageNet weights, and the accuracies compare only as "equal within
noise", both arms training a head on the same frozen random features.
"""

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_notes.errors import KerasNotesError

ARMS = ("reference", "package")
RESULT_PREFIX = "BENCHMARK_RESULT "  # the child's last line: this prefix, then JSON
_MARKS = {}  # in a child: perf_counter() when training ended


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """One benchmark: the data, the model and the schedule; both arms use the same values."""

    data_dir: str = None  # None: generate ``images`` images in a temporary folder
    images: int = 512  # generated images, split evenly over ``classes``
    classes: int = 2
    image_size: int = 224
    arch: str = "mobilenet"
    epochs: int = 10
    batch_size: int = 32
    val_split: float = 0.2
    repeats: int = 3  # timed runs of each arm, alternating
    warmup: bool = True
    seed: int = 1337


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


def reference_arm(config, output):
    """The keras.io recipe on ``config.data_dir``; -> (validation accuracy, training images)."""
    import keras
    import tensorflow as tf

    from keras_notes.finetune.archs import get_arch
    from keras_notes.finetune.layers import ImagePreprocessing

    keras.utils.set_random_seed(config.seed)
    size = (config.image_size, config.image_size)
    train, val = keras.utils.image_dataset_from_directory(
        config.data_dir, validation_split=config.val_split, subset="both", seed=config.seed, image_size=size,
        batch_size=config.batch_size)
    classes, train_images = len(train.class_names), len(train.file_paths)
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    spec = get_arch(config.arch)
    base = spec.base(weights=None, image_size=config.image_size)
    base.trainable = False
    inputs = keras.Input((*size, 3))
    x = ImagePreprocessing(spec.preprocessing)(inputs)  # the arch's preprocess_input, as in the guide
    x = base(x, training=False)  # (batch, 7, 7, 1024) at 224 px
    x = keras.layers.GlobalAveragePooling2D()(x)  # -> (batch, 1024)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(train, validation_data=val, epochs=config.epochs, verbose=0)
    _MARKS["trained"] = time.perf_counter()
    return history.history["val_accuracy"][-1], train_images


def package_arm(config, output):
    """``finetune`` with the package's defaults on ``config.data_dir``; -> (val accuracy, training images)."""
    import contextlib
    import io

    from keras_notes.finetune.config import FinetuneConfig
    from keras_notes.finetune import train

    finetune_config = FinetuneConfig(config.data_dir, arch=config.arch, weights=None, freeze_base=True,
                                     image_size=config.image_size, batch_size=config.batch_size,
                                     epochs=config.epochs, val_split=config.val_split, seed=config.seed,
                                     output=output, verbose=0)
    # The moment training ends, before the evaluation, the saved model and the plots that the
    # reference recipe does not make: the "trained" column compares training with training.
    original = train._train_phases

    def timed_train_phases(model, config, strategy, run_dir, train_data, val_data, splits):
        result = original(model, config, strategy, run_dir, train_data, val_data, splits)
        _MARKS["trained"] = time.perf_counter()
        _MARKS["train_images"] = len(splits.train)  # the run's own split: no second scan inside the timing
        return result

    train._train_phases = timed_train_phases
    with contextlib.redirect_stdout(io.StringIO()):  # the run's own report is not the benchmark's
        result = train.finetune(finetune_config)
    return result.history[-1]["val_accuracy"], _MARKS["train_images"]


def run_arm_here(arm, config, output):
    """Run one arm in this process; -> a result dict (seconds, images/s, peak RSS, accuracy)."""
    import resource

    start = time.perf_counter()
    accuracy, train_images = (reference_arm if arm == "reference" else package_arm)(config, output)
    seconds = time.perf_counter() - start
    return {"arm": arm, "seconds": seconds, "train_seconds": _MARKS["trained"] - start, "images_per_second": train_images * config.epochs / seconds,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
            "val_accuracy": float(accuracy), "train_images": train_images}


def run_arm(arm, config, output):
    """Run one arm in a child process (its own peak memory); -> its result dict."""
    if arm not in ARMS:
        raise KerasNotesError(f"unknown arm {arm!r}; choose from {list(ARMS)}")
    request = json.dumps({"arm": arm, "config": dataclasses.asdict(config), "output": output})
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    done = subprocess.run([sys.executable, "-m", "keras_notes.finetune.benchmark", request], env=env,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise KerasNotesError(f"the {arm} arm failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def run_benchmark(config, say=print):
    """Warm up, then run the arms alternately ``config.repeats`` times; -> a summary dict."""
    with tempfile.TemporaryDirectory(prefix="keras-notes-benchmark-") as scratch:
        if config.data_dir is None:
            data_dir = make_benchmark_folder(os.path.join(scratch, "images"), config.images, config.classes,
                                             config.image_size, config.seed)
            config = dataclasses.replace(config, data_dir=data_dir)
        if config.warmup:
            warm = dataclasses.replace(config, epochs=1)
            for arm in ARMS:
                run_arm(arm, warm, os.path.join(scratch, f"warmup-{arm}"))
            say("warm-up done (one 1-epoch run of each arm, not counted)")
        runs = []
        for repeat in range(config.repeats):
            # Alternate which arm goes first, so that a slow spell of the machine hits both.
            for arm in (ARMS if repeat % 2 == 0 else ARMS[::-1]):
                result = run_arm(arm, config, os.path.join(scratch, f"{arm}-{repeat}"))
                say(f"  {arm:9} run {repeat + 1}: {result['seconds']:.1f} s, "
                    f"{result['images_per_second']:.1f} images/s, val accuracy {result['val_accuracy']:.4f}")
                runs.append(result)
    return summarize(runs)


def summarize(runs):
    """Medians per arm and the ratio reference / package of the median wall times."""
    arms = {}
    for arm in ARMS:
        mine = [run for run in runs if run["arm"] == arm]
        arms[arm] = {key: statistics.median(run[key] for run in mine)
                     for key in ("seconds", "train_seconds", "images_per_second", "peak_rss_mib", "val_accuracy")}
        arms[arm]["runs"] = len(mine)
    ratio = arms["reference"]["seconds"] / arms["package"]["seconds"]
    train_ratio = arms["reference"]["train_seconds"] / arms["package"]["train_seconds"]
    return {"arms": arms, "ratio": ratio, "train_ratio": train_ratio, "runs": runs}


def format_summary(summary):
    """The README table: one row per arm, medians, then the speed ratio."""
    from keras_notes.report import format_table

    rows = [[arm, values["runs"], f"{values['train_seconds']:.1f}", f"{values['seconds']:.1f}",
             f"{values['images_per_second']:.1f}", f"{values['peak_rss_mib']:.0f}", f"{values['val_accuracy']:.4f}"]
            for arm, values in summary["arms"].items()]
    table = format_table(["arm", "runs", "trained s", "wall s", "images/s", "peak RSS MiB", "val accuracy"],
                         rows, align="lrrrrrr")
    return (f"{table}\n(medians; trained s: start to the end of training; wall s: the whole run, for the "
            f"package with evaluation, saved model and plots; images/s: training images x epochs / wall s)\n\n"
            f"ratio to the end of training (reference / package): {summary['train_ratio']:.2f}x\n"
            f"ratio of whole runs (reference / package):          {summary['ratio']:.2f}x")


def _child(request):
    """Entry point of a child process: run one arm and print its result line."""
    values = json.loads(request)
    result = run_arm_here(values["arm"], BenchmarkConfig(**values["config"]), values["output"])
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
