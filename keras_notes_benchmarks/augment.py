"""``--mode augment``: the package's augmented run against the same training fed from RAM.

Augmentation cannot be cached, so the package reads, decodes and augments every image
every epoch. The baseline ("in-memory") trains the same model with the same
augmentation on the images decoded once and held in RAM. The timed span is the
training, from the start of ``fit``.
"""

import time

import numpy as np

from keras_notes_benchmarks.arms import Mode, package_arm
from keras_notes_benchmarks.common import HEAD_LR

TIMED_PHASE = 1


def in_memory_arm(config, output, marks):
    """The package's model and augmentation fed from decoded images held in RAM; -> (val accuracy, images).

    The same training step as the package's augmented run, without reading or decoding
    files. Timed from ``fit`` to its end.
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
    marks["timed_start"] = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=config.epochs, verbose=0)
    marks["trained"] = marks["timed_end"] = time.perf_counter()
    return history.history["val_accuracy"][-1], len(train_y)


def augmented_arm(config, output, marks):
    """The package with ``config.augment``: every image read, decoded and augmented every epoch."""
    return package_arm(config, output, marks, {"augment": config.augment}, timed_phase=TIMED_PHASE)


MODE = Mode(
    arms={"in-memory": in_memory_arm, "package": augmented_arm},
    help="the package's augmented run against the same training fed from images decoded in RAM",
    headline=lambda config: f"augmentation {list(config.augment)}: images in RAM vs package",
    timed="fit s",
    span="the training alone, from the start of fit",
    ratio="ratio of training time",
)
