"""Fine-tuning speed: the keras.io reference recipe against the package, side by side.

Mode ``phase1``: the reference arm is the keras.io "Transfer learning &
fine-tuning" recipe (and the TensorFlow MobileNetV2 tutorial's):
``image_dataset_from_directory`` -> the frozen base called with ``training=False`` ->
GlobalAveragePooling -> Dropout -> Dense, ``model.fit``; every image goes through the
whole base on every step of every epoch. The package arm is ``finetune(FinetuneConfig(...))``
with its defaults (the frozen part runs once), and it does more than training: it also
scans the folder, evaluates, saves the model and plots.

Mode ``phase2``: both arms are ``finetune`` with the top of the base unfrozen
(``unfreeze_from``); the "streamed" arm runs the whole base forward on every step
(``cache=False``), the package arm keeps the frozen layers' output at the cut. The
timed span is phase 2 alone.

Mode ``augment``: the package's run with augmentation (which cannot be cached, so every
image is read, decoded and augmented every epoch) against the same model and the same
augmentation fed from the images decoded once and held in RAM ("in-memory"); the
timed span is the training, from the start of ``fit``.

Each run is a child process, so that each arm's peak resident memory (``ru_maxrss``) is
its own and neither inherits the other's TensorFlow state; the clock starts after the
child has imported TensorFlow, which costs both arms the same seconds and is not part of
either recipe. The arms alternate, after a warm-up pair (one epoch each) that fills the
page cache with the images and lets the CPU clock settle; the table quotes medians.
Weights are random, the compute of ImageNet weights; the base's batch-norm statistics
are first measured on the images (``make_base_weights``), so that its features carry
the classes and the validation accuracies compare as real numbers. Both arms load that
same file.
"""

import contextlib
import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from keras_notes.errors import KerasNotesError

# By mode; the first arm is the baseline the package is measured against.
ARMS = {"phase1": ("reference", "package"), "phase2": ("streamed", "package"), "augment": ("in-memory", "package")}
RESULT_PREFIX = "BENCHMARK_RESULT "  # the child's last line: this prefix, then JSON
CALIBRATION_BATCHES = 8  # batches of images over which the base's batch-norm statistics are measured
_MARKS = {}  # in a child: perf_counter() marks and counts the arm records


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
    mode: str = "phase1"  # a key of ARMS
    fine_tune_epochs: int = 5  # phase2 only
    unfreeze_from: str = "conv_dw_12"  # phase2 only; MobileNet's last two depthwise/pointwise blocks
    augment: tuple = ("flip", "rotation", "zoom")  # augment only
    base_weights: str = None  # None: measure the batch-norm statistics of a random base on the images

    def __post_init__(self):
        for name in ("images", "classes", "image_size", "epochs", "batch_size", "repeats", "fine_tune_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise KerasNotesError(f"{name} must be an integer of at least 1; received {name}={value!r}")
        if self.mode not in ARMS:
            raise KerasNotesError(f"mode must be one of {list(ARMS)}; received mode={self.mode!r}")
        object.__setattr__(self, "augment", tuple(self.augment))  # a JSON list reads back as the same tuple


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


HEAD_LR = 1e-3  # Adam's default, the keras.io guide's for the new head


def keras_io_head(x, classes):
    """The keras.io guide's head on pooled features: Dropout(0.2) -> Dense(classes, softmax)."""
    import keras

    return keras.layers.Dense(classes, activation="softmax")(keras.layers.Dropout(0.2)(x))


def reference_arm(config, output):
    """The keras.io recipe on ``config.data_dir``; -> (validation accuracy, training images)."""
    import keras
    import tensorflow as tf

    from keras_notes.finetune.archs import get_arch
    from keras_notes.finetune.layers import ImagePreprocessing
    from keras_notes.finetune.train import compile_model
    from keras_notes.finetune.weights import load_base

    keras.utils.set_random_seed(config.seed)
    size = (config.image_size, config.image_size)
    train, val = keras.utils.image_dataset_from_directory(
        config.data_dir, validation_split=config.val_split, subset="both", seed=config.seed, image_size=size,
        batch_size=config.batch_size)
    classes, train_images = len(train.class_names), len(train.file_paths)
    train, val = train.prefetch(tf.data.AUTOTUNE), val.prefetch(tf.data.AUTOTUNE)
    spec = get_arch(config.arch)
    base = load_base(config.arch, config.base_weights, image_size=config.image_size)
    base.trainable = False
    inputs = keras.Input((*size, 3))
    x = ImagePreprocessing(spec.preprocessing)(inputs)  # the arch's preprocess_input, as in the guide
    x = base(x, training=False)  # (batch, 7, 7, 1024) at 224 px
    x = keras.layers.GlobalAveragePooling2D()(x)  # -> (batch, 1024)
    model = keras.Model(inputs, keras_io_head(x, classes))
    compile_model(model, HEAD_LR)
    history = model.fit(train, validation_data=val, epochs=config.epochs, verbose=0)
    _MARKS["trained"] = _MARKS["timed_end"] = time.perf_counter()
    return history.history["val_accuracy"][-1], train_images


def package_arm(config, output, cache=None):
    """``finetune`` with the package's defaults on ``config.data_dir``; -> (val accuracy, training images).

    Mode ``phase2`` unfreezes the base from ``config.unfreeze_from``;
    ``cache=False`` streams every phase through the whole model.
    """
    from keras_notes.finetune.config import FinetuneConfig
    from keras_notes.finetune import train

    changes = {"phase2": {"fine_tune_epochs": config.fine_tune_epochs, "unfreeze_from": config.unfreeze_from},
               "augment": {"augment": config.augment}}.get(config.mode, {})
    finetune_config = FinetuneConfig(config.data_dir, arch=config.arch, weights=config.base_weights,
                                     freeze_base=True, image_size=config.image_size, batch_size=config.batch_size,
                                     epochs=config.epochs, val_split=config.val_split, seed=config.seed,
                                     output=output, verbose=0, cache=cache, **changes)
    # Marks at the start and end of each phase: the "trained" column ends where training does,
    # before the evaluation, the saved model and the plots that the reference recipe does not make.
    original = train.run_phase

    def timed_run_phase(model, config, run_dir, splits, val_data, phase, *args, **kwargs):
        _MARKS[f"phase{phase}_start"] = time.perf_counter()
        result = original(model, config, run_dir, splits, val_data, phase, *args, **kwargs)
        _MARKS["trained"] = _MARKS[f"phase{phase}_end"] = time.perf_counter()
        _MARKS["train_images"] = len(splits.train)  # the run's own split: no second scan inside the timing
        return result

    train.run_phase = timed_run_phase
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the run's own report is not the benchmark's
            result = train.finetune_one_machine(finetune_config)
    finally:
        train.run_phase = original
    if config.mode == "phase2":
        _MARKS["timed_start"], _MARKS["timed_end"] = _MARKS["phase2_start"], _MARKS["phase2_end"]
    elif config.mode == "augment":  # the training itself, as in the in-memory arm
        _MARKS["timed_start"], _MARKS["timed_end"] = _MARKS["phase1_start"], _MARKS["phase1_end"]
    else:
        _MARKS["timed_end"] = _MARKS["trained"]
    return result.history[-1]["val_accuracy"], _MARKS["train_images"]


def in_memory_arm(config, output):
    """The package's model and augmentation fed from decoded images held in RAM; -> (val accuracy, images).

    The baseline of the ``augment`` mode: the same training step as the package's
    augmented run, without reading or decoding files. Timed from ``fit`` to its end.
    """
    import keras
    import tensorflow as tf

    from keras_notes.finetune.data import load_splits, make_augmentation, make_eval_dataset
    from keras_notes.finetune.models import build_model
    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(config.seed)
    splits = load_splits(config.data_dir, val_split=config.val_split, seed=config.seed)

    def in_ram(files):  # (n, size, size, 3) float32, decoded once
        return np.concatenate([images.numpy() for images, _ in make_eval_dataset(files, config.image_size, 64)])

    train_x, val_x = in_ram(splits.train), in_ram(splits.val)
    train_y, val_y = (np.asarray(files.labels, np.int32) for files in (splits.train, splits.val))
    model = build_model(config.arch, len(splits.class_names), weights=config.base_weights,
                        image_size=config.image_size, freeze_base=True)
    compile_model(model, HEAD_LR)
    augmentation = make_augmentation(config.augment, config.seed)
    train = (tf.data.Dataset.from_tensor_slices((train_x, train_y)).shuffle(len(train_y), seed=config.seed)
             .batch(config.batch_size, drop_remainder=True)
             .map(lambda images, labels: (augmentation(images, training=True), labels),
                  num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    val = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(config.batch_size)
    _MARKS["timed_start"] = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=config.epochs, verbose=0)
    _MARKS["trained"] = _MARKS["timed_end"] = time.perf_counter()
    return history.history["val_accuracy"][-1], len(train_y)


ARM_FUNCTIONS = {
    "reference": reference_arm,
    "in-memory": in_memory_arm,
    "package": package_arm,
    "streamed": lambda config, output: package_arm(config, output, cache=False),
}


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


def run_arm_here(arm, config, output):
    """Run one arm in this process; -> a result dict (seconds, images/s, peak RSS, accuracy)."""
    import keras  # noqa: F401 -- imported before the clock starts: the same cost for every arm
    import tensorflow  # noqa: F401

    import keras_notes.finetune.train  # noqa: F401

    _MARKS.clear()
    start = _MARKS["timed_start"] = time.perf_counter()
    accuracy, train_images = ARM_FUNCTIONS[arm](config, output)
    seconds = time.perf_counter() - start
    epochs = config.fine_tune_epochs if config.mode == "phase2" else config.epochs
    timed = _MARKS["timed_end"] - _MARKS["timed_start"]
    return {"arm": arm, "seconds": seconds, "train_seconds": _MARKS["trained"] - start,
            "timed_seconds": timed, "images_per_second": train_images * epochs / timed,
            "peak_rss_mib": peak_rss_mib(),
            "val_accuracy": float(accuracy), "train_images": train_images}


def run_arm(arm, config, output):
    """Run one arm in a child process (its own peak memory); -> its result dict."""
    if arm not in ARM_FUNCTIONS:
        raise KerasNotesError(f"unknown arm {arm!r}; choose from {sorted(ARM_FUNCTIONS)}")
    return _run_child({"arm": arm, "config": dataclasses.asdict(config), "output": output}, f"{arm} arm")


def prepare(config, scratch):
    """``config`` with its image folder and base weights filled in (generated under ``scratch`` if None)."""
    changes = {}
    if config.data_dir is None:
        changes["data_dir"] = make_benchmark_folder(os.path.join(scratch, "images"), config.images,
                                                    config.classes, config.image_size, config.seed)
    config = dataclasses.replace(config, **changes)
    if config.base_weights is None:  # in a child: the parent stays small while the arms run
        path = os.path.join(scratch, "base.weights.h5")
        _run_child({"base_weights": {"path": path, "config": dataclasses.asdict(config)}}, "base weights")
        config = dataclasses.replace(config, base_weights=path)
    return config


def run_benchmark(config, say=print):
    """Warm up, then run the mode's two arms alternately ``config.repeats`` times; -> a summary dict."""
    arms = ARMS[config.mode]
    with tempfile.TemporaryDirectory(prefix="keras-notes-benchmark-") as scratch:
        config = prepare(config, scratch)
        if config.warmup:
            warm = dataclasses.replace(config, epochs=1, fine_tune_epochs=1)
            for arm in arms:
                run_arm(arm, warm, os.path.join(scratch, f"warmup-{arm}"))
            say("warm-up done (one 1-epoch run of each arm, not counted)")
        runs = []
        for repeat in range(config.repeats):
            # Alternate which arm goes first, so that a slow spell of the machine hits both.
            for arm in (arms if repeat % 2 == 0 else arms[::-1]):
                result = run_arm(arm, config, os.path.join(scratch, f"{arm}-{repeat}"))
                say(f"  {arm:9} run {repeat + 1}: {result['timed_seconds']:.1f} s timed, {result['seconds']:.1f} s "
                    f"in all, {result['images_per_second']:.1f} images/s, val accuracy {result['val_accuracy']:.4f}")
                runs.append(result)
    return summarize(runs, arms)


SUMMARY_KEYS = ("timed_seconds", "seconds", "images_per_second", "peak_rss_mib", "val_accuracy")


def summarize(runs, arms=ARMS["phase1"]):
    """Medians per arm, and the ratios baseline / package of the median timed and whole-run seconds."""
    medians = {}
    for arm in arms:
        mine = [run for run in runs if run["arm"] == arm]
        medians[arm] = {key: statistics.median(run[key] for run in mine) for key in SUMMARY_KEYS}
        medians[arm]["runs"] = len(mine)
    baseline, package = medians[arms[0]], medians[arms[1]]
    return {"arms": medians, "ratio": baseline["seconds"] / package["seconds"],
            "timed_ratio": baseline["timed_seconds"] / package["timed_seconds"], "runs": runs}


def format_summary(summary, mode="phase1"):
    """The README table: one row per arm, medians, then the speed ratios."""
    from keras_notes.report import format_table

    rows = [[arm, values["runs"], f"{values['timed_seconds']:.1f}", f"{values['seconds']:.1f}",
             f"{values['images_per_second']:.1f}", f"{values['peak_rss_mib']:.0f}", f"{values['val_accuracy']:.4f}"]
            for arm, values in summary["arms"].items()]
    timed = {"phase1": "trained s", "phase2": "phase 2 s", "augment": "fit s"}[mode]
    table = format_table(["arm", "runs", timed, "wall s", "images/s", "peak RSS MiB", "val accuracy"],
                         rows, align="lrrrrrr")
    span = {"phase1": "start to the end of training", "phase2": "phase 2 alone; the package's trains on the outputs at its cut kept by phase 1's pass",
            "augment": "the training alone, from the start of fit"}[mode]
    first = {"phase1": "ratio to the end of training", "phase2": "ratio of phase 2",
             "augment": "ratio of training time"}[mode]
    return (f"{table}\n(medians; {timed}: {span}; wall s: the whole run after importing TensorFlow, for the "
            f"package with evaluation, saved model and plots; images/s: training images x epochs / {timed})\n\n"
            f"{first + ' (baseline / package):':<52} {summary['timed_ratio']:.2f}x\n"
            f"{'ratio of whole runs (baseline / package):':<52} {summary['ratio']:.2f}x")


def run_growth(config, sizes, say=print):
    """The package arm alone on generated folders of each size in ``sizes``; -> one result dict per size."""
    results = []
    with tempfile.TemporaryDirectory(prefix="keras-notes-growth-") as scratch:
        for images in sizes:
            folder = os.path.join(scratch, f"images-{images}")
            sized = dataclasses.replace(config, images=images, data_dir=None)
            result = run_arm("package", prepare(sized, folder), os.path.join(folder, "run"))
            result["images"] = images
            say(f"  {images:6d} images: {result['seconds']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB")
            results.append(result)
    return results


def format_growth(results):
    """The growth table: wall time, time per image and peak memory against the number of images."""
    from keras_notes.report import format_table

    smallest = results[0]
    rows = [[result["images"], f"{result['seconds']:.1f}", f"{1000 * result['seconds'] / result['images']:.1f}",
             f"{result['peak_rss_mib']:.0f}", f"{result['peak_rss_mib'] / smallest['peak_rss_mib']:.2f}"]
            for result in results]
    return format_table(["images", "wall s", "ms / image", "peak RSS MiB", f"RSS / RSS at {smallest['images']}"],
                        rows, align="rrrrr")


def head_accuracy(features, labels, train_rows, val_rows, config, seed, drop_remainder):
    """Final validation accuracy of the keras.io head (``keras_io_head``, Adam 1e-3) trained on kept features."""
    import keras
    import tensorflow as tf

    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(features.shape[1:])
    head = keras.Model(inputs, keras_io_head(inputs, int(labels.max()) + 1))
    compile_model(head, HEAD_LR)
    train = (tf.data.Dataset.from_tensor_slices((features[train_rows], labels[train_rows]))
             .shuffle(len(train_rows), seed=seed).batch(config.batch_size, drop_remainder=drop_remainder))
    history = head.fit(train, validation_data=(features[val_rows], labels[val_rows]), epochs=config.epochs,
                       verbose=0, shuffle=False)  # the dataset shuffles itself
    return history.history["val_accuracy"][-1]


def accuracy_spread(config, seeds, say=print):
    """Validation accuracy over ``seeds``: the package's split and batching against keras.io's.

    The two phase-1 arms differ in how they split the images (per class against at random),
    in whether the last partial batch trains, and in the head's random start, so their
    accuracies differ by seed. Here the frozen base runs once over every image, then each
    seed splits the kept features both ways and trains the same head on each. -> lists.
    """
    import keras

    from keras_notes.finetune import cache
    from keras_notes.finetune.data import load_splits, make_eval_dataset
    from keras_notes.finetune.models import build_model

    results = {"package": [], "keras.io": []}
    with tempfile.TemporaryDirectory(prefix="keras-notes-accuracy-") as scratch:
        config = prepare(config, scratch)
        everything = load_splits(config.data_dir, val_split=config.val_split, seed=0)
        files = everything.train + everything.val
        model = build_model(config.arch, len(everything.class_names), weights=config.base_weights,
                            image_size=config.image_size, freeze_base=True)
        features = cache.extract_features(cache.feature_extractor(model),
                                          make_eval_dataset(files, config.image_size, config.batch_size), len(files))
        row = {path: index for index, path in enumerate(files.paths)}
        labels = np.asarray(files.labels, np.int32)
        for seed in seeds:
            split = load_splits(config.data_dir, val_split=config.val_split, seed=seed)
            with contextlib.redirect_stdout(io.StringIO()):  # "Found 512 files ..."
                train, val = keras.utils.image_dataset_from_directory(
                    config.data_dir, validation_split=config.val_split, subset="both", seed=seed,
                    image_size=(config.image_size, config.image_size), batch_size=config.batch_size)
            for name, paths, drop in (("package", (split.train.paths, split.val.paths), True),
                                      ("keras.io", (train.file_paths, val.file_paths), False)):
                train_rows, val_rows = ([row[path] for path in group] for group in paths)
                results[name].append(head_accuracy(features, labels, train_rows, val_rows, config, seed, drop))
            say(f"  seed {seed}: package split {results['package'][-1]:.4f}, "
                f"keras.io split {results['keras.io'][-1]:.4f}")
    return results


def format_accuracy_spread(results):
    """Mean, standard deviation and range of each split's accuracies, and the difference of the means."""
    from keras_notes.report import format_table

    rows = [[name, len(values), f"{statistics.mean(values):.3f}", f"{statistics.stdev(values):.3f}",
             f"{min(values):.3f}", f"{max(values):.3f}"] for name, values in results.items()]
    table = format_table(["split", "seeds", "mean", "sd", "min", "max"], rows, align="lrrrrr")
    package, reference = results["package"], results["keras.io"]
    error = (statistics.variance(package) / len(package) + statistics.variance(reference) / len(reference)) ** 0.5
    return (f"{table}\n\ndifference of the means (keras.io - package): "
            f"{statistics.mean(reference) - statistics.mean(package):+.3f}, standard error {error:.3f}")


# The CPU choices: each setting is one child process, because TensorFlow fixes its thread
# pools when it starts. "frozen" is phase 1 streamed (the base forward, the head trained),
# "full" trains the whole model (the base's backward pass included).
PRECISION_CHOICES = ("float32", "mixed_bfloat16")
THREAD_CHOICES = ((0, 0), (1, 1), (1, 2), (2, 1), (2, 2))  # (inter-op, intra-op); 0 is TensorFlow's own choice
WORKLOADS = ("frozen", "full")


def step_rate(arch, image_size, batch_size, steps, precision="float32", workload="frozen", inter=0, intra=0):
    """Training images/s of ``workload`` on one in-memory batch, over ``steps`` steps after two untimed ones."""
    import tensorflow as tf

    # Only before TensorFlow starts (a fresh child): setting them later raises, even to the same value.
    if tf.config.threading.get_inter_op_parallelism_threads() != inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    if tf.config.threading.get_intra_op_parallelism_threads() != intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    import keras

    from keras_notes.finetune.models import build_model
    from keras_notes.finetune.strategy import precision_policy
    from keras_notes.finetune.train import compile_model

    keras.utils.set_random_seed(0)
    with precision_policy(precision):
        model = build_model(arch, 2, weights=None, image_size=image_size, freeze_base=workload == "frozen")
        compile_model(model, 1e-4)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype(np.float32)
    labels = rng.integers(0, 2, batch_size).astype(np.int32)
    data = tf.data.Dataset.from_tensors((images, labels)).repeat()
    model.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # traces the step
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    return batch_size * steps / (time.perf_counter() - start)


def cpu_settings():
    """Every (precision, inter, intra, workload) the CPU measurement runs, TensorFlow's defaults first."""
    settings = [(precision, 0, 0, workload) for precision in PRECISION_CHOICES for workload in WORKLOADS]
    settings += [("float32", inter, intra, workload) for inter, intra in THREAD_CHOICES[1:] for workload in WORKLOADS]
    return settings


def run_cpu_choices(config, steps=10, say=print):
    """Images/s of each ``cpu_settings`` entry, ``config.repeats`` times in alternating order; -> rows."""
    rates = {setting: [] for setting in cpu_settings()}
    for repeat in range(config.repeats):
        order = list(rates) if repeat % 2 == 0 else list(rates)[::-1]
        for precision, inter, intra, workload in order:
            request = {"step": {"arch": config.arch, "image_size": config.image_size,
                                "batch_size": config.batch_size, "steps": steps, "precision": precision,
                                "workload": workload, "inter": inter, "intra": intra}}
            rate = _run_child(request, f"{precision} {workload} threads {inter}x{intra}")["images_per_second"]
            rates[(precision, inter, intra, workload)].append(rate)
            say(f"  {precision:14} {workload:6} inter {inter} intra {intra}: {rate:.1f} images/s")
    return [{"precision": precision, "inter": inter, "intra": intra, "workload": workload,
             "images_per_second": statistics.median(values)}
            for (precision, inter, intra, workload), values in rates.items()]


def format_cpu_choices(rows):
    """One row per setting: images/s of each workload and its ratio to TensorFlow's float32 default."""
    from keras_notes.report import format_table

    rate = {(row["precision"], row["inter"], row["intra"], row["workload"]): row["images_per_second"]
            for row in rows}
    table = []
    for setting in dict.fromkeys(key[:3] for key in rate):  # in the rows' order, once each
        values = list(setting)
        for workload in WORKLOADS:
            value = rate[(*setting, workload)]
            values += [f"{value:.1f}", f"{value / rate[('float32', 0, 0, workload)]:.2f}"]
        table.append(values)
    return format_table(["precision", "inter", "intra", "frozen img/s", "ratio", "full img/s", "ratio"], table,
                        align="lrrrrrr")


def _run_child(request, what):
    """Run ``request`` in a child process; -> the dict its result line carries."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    done = subprocess.run([sys.executable, "-m", "keras_notes.finetune.benchmark", json.dumps(request)], env=env,
                          capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise KerasNotesError(f"the {what} run failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):])


def _child(request):
    """Entry point of a child process: run one arm (or one step measurement) and print its result line."""
    values = json.loads(request)
    if "step" in values:
        result = {"images_per_second": step_rate(**values["step"])}
    elif "base_weights" in values:
        request = values["base_weights"]
        result = {"path": make_base_weights(request["path"], BenchmarkConfig(**request["config"]))}
    else:
        result = run_arm_here(values["arm"], BenchmarkConfig(**values["config"]), values["output"])
    print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1])
