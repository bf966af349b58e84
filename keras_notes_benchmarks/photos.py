"""``--mode photos``: a folder of phone-sized photos, a third stored sideways, raced as ``phase1``.

The folder (``photo_folder``): ``--images`` JPEGs of ``--photo-width`` x ``--photo-height``
px at quality 90, generated once into ``--photo-cache``. The reference arm is ``phase1``'s
keras.io recipe, which decodes every photo whole, every epoch, and ignores the EXIF tags;
the package arm is ``finetune`` with its defaults, which decodes each photo once, at the
largest DCT reduction that keeps 224 px, turns it upright, and keeps the frozen base's
output. Both arms mark the end of their first epoch (for the package that includes the
scan and the one pass of the frozen base).

After the race, one more child measures the package's pass alone
(``pass_share``): its input pipeline without the model, the same pipeline decoding
the photos whole, and the pass itself, alternately, medians of ``--repeats``; the
decoding share is the pipeline's time over the pass's.
"""

import dataclasses
import statistics
import time

from keras_notes_benchmarks import arms, phase1
from keras_notes_benchmarks.arms import Mode
from keras_notes_benchmarks.common import run_child
from keras_notes_benchmarks.photo_folder import default_cache, photo_folder

PHOTO_SEED = 0  # the folder is a fixed test input, the same whatever --seed the race uses


def make_folder(root, config):
    """The cached photo folder for ``config`` (``root``, the race's scratch folder, is not used)."""
    return photo_folder(config.photo_cache or default_cache(), images=config.images, classes=config.classes,
                        width=config.photo_width, height=config.photo_height, seed=PHOTO_SEED)


def first_epoch_mark(marks):
    """A Keras callback that sets ``marks["epoch1_end"]`` when the first epoch of a fit ends."""
    import keras

    class FirstEpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marks.setdefault("epoch1_end", time.perf_counter())

    return FirstEpochEnd()


def reference_arm(config, output, marks):
    """``phase1``'s keras.io recipe, with the end of its first epoch marked."""
    return phase1.reference_arm(config, output, marks, callbacks=[first_epoch_mark(marks)])


def package_arm(config, output, marks):
    """The package's phase 1 (``arms.package_arm``), with the end of its first epoch marked."""
    from keras_notes.finetune import train

    original = train.phase_callbacks

    def marked(*args, **kwargs):
        return [*original(*args, **kwargs), first_epoch_mark(marks)]

    train.phase_callbacks = marked
    try:
        return arms.package_arm(config, output, marks)
    finally:
        train.phase_callbacks = original


def pass_share(config):
    """Seconds of the package's frozen pass over the folder, and of its input pipeline alone.

    Runs in a child process. -> ``{"images", "pass", "decode", "decode_whole",
    "decode_one_thread"}`` (medians of ``config.repeats`` alternating runs): the pass as
    ``cache.RunCache`` runs it (decode, orient, resize, then the frozen MobileNet in batches
    of ``cache.PASS_BATCH_SIZE``), its pipeline alone (parallel, as the pass runs it), the
    pipeline decoding every JPEG whole (``reduce=False``), and the pipeline on one thread.
    """
    import keras
    import tensorflow as tf

    from keras_notes.finetune.cache import PASS_BATCH_SIZE, extract_features
    from keras_notes.finetune.data import image_dataset, load_splits
    from keras_notes.finetune.frozen_part import feature_extractor
    from keras_notes.finetune.models import build_model

    keras.utils.set_random_seed(config.seed)
    splits = load_splits(config.data_dir, val_split=config.val_split, seed=config.seed)
    files = splits.train + splits.val
    model = build_model(config.arch, len(splits.class_names), weights=config.base_weights,
                        image_size=config.image_size, freeze_base=True)
    extractor = feature_extractor(model)

    def batches(reduce=True, threads=None):
        dataset = image_dataset(files, config.image_size, reduce=reduce).batch(PASS_BATCH_SIZE).prefetch(2)
        if threads is not None:  # every map of the pipeline on this many threads
            options = tf.data.Options()
            options.threading.private_threadpool_size = threads
            dataset = dataset.with_options(options)
        return dataset

    def drain(dataset):
        for _ in dataset:
            pass

    jobs = {"pass": lambda: extract_features(extractor, batches(), len(files)),
            "decode": lambda: drain(batches()),
            "decode_whole": lambda: drain(batches(reduce=False)),
            "decode_one_thread": lambda: drain(batches(threads=1))}
    seconds = {name: [] for name in jobs}
    for repeat in range(config.repeats):
        for name in (list(jobs) if repeat % 2 == 0 else list(jobs)[::-1]):
            start = time.perf_counter()
            jobs[name]()
            seconds[name].append(time.perf_counter() - start)
    return {"images": len(files), **{name: statistics.median(values) for name, values in seconds.items()}}


def after(config, say=print):
    """``pass_share`` in a child process; -> the lines printed under the race's table."""
    say("measuring the package's pass alone ...")
    share = run_child("pass_share", {"config": dataclasses.asdict(config)}, "pass share")
    count = share["images"]
    return [
        "",
        f"the package's pass over the {count} photos (medians of {config.repeats}): {share['pass']:.1f} s, "
        f"{1000 * share['pass'] / count:.0f} ms a photo",
        f"  its input pipeline alone (read, decode at reduced scale, turn, resize): {share['decode']:.1f} s = "
        f"{100 * share['decode'] / share['pass']:.0f}% of the pass",
        f"  the same pipeline decoding every photo whole: {share['decode_whole']:.1f} s "
        f"({share['decode_whole'] / share['decode']:.2f}x the reduced decode)",
        f"  the same pipeline on one thread: {share['decode_one_thread']:.1f} s "
        f"({share['decode_one_thread'] / share['decode']:.2f}x the parallel decode)",
    ]


MODE = Mode(
    arms={"reference": reference_arm, "package": package_arm},
    help="the keras.io recipe against the package on large photos, a third stored sideways (generated once "
         "into --photo-cache)",
    headline=lambda config: (f"photos: keras.io recipe vs package, {config.photo_width}x{config.photo_height} "
                             f"JPEGs at quality 90"),
    timed="trained s",
    span="start to the end of training",
    ratio="ratio to the end of training",
    make_folder=make_folder,
    after=after,
)
