"""Phase 1 on cached features: run the frozen part of the model once, train the head on its output.

With a frozen base and no augmentation, everything below the head gives the same
output for the same image in every epoch: the preprocessing and the pooling have no
parameters, and a frozen base runs in inference mode (``models`` module docstring).
So phase 1 computes the pooled features once per image::

    image (n, s, s, 3) -> preprocessing -> base (n, h, w, c) -> pool (n, c)   once

and trains a head made of the model's *own* ``dropout`` and ``predictions`` layers
on ``(n, c)`` features for every epoch. The head shares those layer objects with
the full model, so the full model is trained in place and ``model.keras`` is still
the whole model that takes raw images. It also shares the full model's optimizer,
so Adam's state and step count are where the uncached path would leave them.

The batches come in the same order as the uncached path's: the training features are
shuffled as indices ``0..n-1`` with the same seed and the same ``reshuffle_each_iteration``
shuffle that ``data.image_dataset`` applies to the file list, and the same dropout
layer draws the same masks. What differs is float round-off: the features are
computed in inference batches, not inside the training step (measured here: losses,
head weights and predictions bitwise equal to the uncached run's; tests/test_cache.py).
One difference is left on purpose: phase 2 trains on the image dataset, whose shuffle
the cached phase 1 did not advance, so phase 2 sees its epochs' orders starting from
the first one, a different (equally random) order than after an uncached phase 1.

Memory: the features take ``n * c * 4`` bytes (MobileNet: 4 KiB an image). Up to
``cache_budget`` MiB they stay in RAM; beyond it they go to a NumPy memory-mapped
file under ``<run>/cache/``, written batch by batch so that the pass itself stays at
bounded memory, and removed after phase 1 unless ``keep_cache``.
"""

import contextlib
import dataclasses
import os
import shutil

import numpy as np

from keras_notes.errors import KerasNotesError

CACHE_DIR = "cache"  # under the run folder, for features that do not fit the RAM budget
HEAD_BACKUP_PHASE = "1-head"  # checkpoints/phase1-head: the head's backup is not the full model's
POOL_LAYER_NAME = "pool"
HEAD_LAYER_NAMES = ("dropout", "predictions")
DEFAULT_BUDGET_FRACTION = 0.5  # of MemAvailable: the rest is for TensorFlow, the batches and the OS
FALLBACK_BUDGET_MIB = 1024  # when /proc/meminfo cannot be read (not Linux)
MIB = 2 ** 20


@dataclasses.dataclass(frozen=True)
class CachedFeatures:
    """Phase 1's training input when cached: the head to fit and its ``(features, labels)`` dataset."""

    head: object  # keras.Model: (batch, c) features -> class probabilities, layers shared with the model
    dataset: object  # tf.data.Dataset of ((batch, c) float32, (batch,) int32)


def available_memory_mib(meminfo="/proc/meminfo"):
    """MemAvailable in MiB from ``/proc/meminfo``, or None where that cannot be read."""
    try:
        with open(meminfo, encoding="ascii") as file:
            for line in file:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024  # the file counts kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def resolve_budget(budget_mib, meminfo="/proc/meminfo"):
    """``budget_mib``, or half of the available memory (``FALLBACK_BUDGET_MIB`` if unknown)."""
    if budget_mib is not None:
        return float(budget_mib)
    available = available_memory_mib(meminfo)
    return FALLBACK_BUDGET_MIB if available is None else round(available * DEFAULT_BUDGET_FRACTION, 1)


def resolve_cache(config, replicas=1):
    """Whether phase 1 runs on cached features: ``config.cache``, or on when it is possible.

    Possible means: the base is frozen and there is no augmentation (an augmented image
    differs every epoch, so its features do too); ``cache=True`` otherwise is an error
    naming the reason. More than one replica turns the cache off: the cached head is
    fitted without the sample-weight padding that several replicas need.
    """
    reasons = []
    if not config.freeze_base:
        reasons.append("the base is not frozen in phase 1")
    if config.augment:
        reasons.append(f"augmentation {list(config.augment)} changes the images every epoch")
    if config.cache and reasons:
        raise KerasNotesError("cannot cache the frozen base's features: " + "; ".join(reasons)
                              + "; received cache=True")
    return (not reasons if config.cache is None else bool(config.cache)) and replicas == 1


def feature_extractor(model):
    """The frozen part of a ``build_model`` model: raw images -> pooled features (batch, c)."""
    import keras

    return keras.Model(model.inputs, model.get_layer(POOL_LAYER_NAME).output, name="frozen_features")


def head_model(model):
    """The model's own dropout and predictions layers on a features input: (batch, c) -> (batch, classes)."""
    import keras

    pool = model.get_layer(POOL_LAYER_NAME)
    inputs = keras.Input(pool.output.shape[1:], name="features")
    x = inputs
    for name in HEAD_LAYER_NAMES:
        x = model.get_layer(name)(x)
    head = keras.Model(inputs, x, name="head")
    # The full model's optimizer (and loss, metrics): Adam's moments and step count carry on
    # in the object that phase 2, resume and the tests see as model.optimizer.
    head.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"])
    return head


def extract_features(extractor, dataset, count, path=None):
    """Run ``extractor`` over ``dataset`` batch by batch into a ``(count, c)`` float32 array.

    ``path`` gives a ``.npy`` memory-mapped file instead of an in-RAM array; either way only
    one batch of images is in memory at a time.
    """
    channels = extractor.output.shape[-1]
    if path is None:
        features = np.empty((count, channels), np.float32)
    else:
        features = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, channels))
    start = 0
    for batch in dataset:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        values = np.asarray(extractor.predict_on_batch(images), np.float32)  # (batch, c)
        features[start:start + len(values)] = values
        start += len(values)
    if start != count:
        raise KerasNotesError(f"feature pass gave {start} rows for {count} images")
    if path is not None:
        features.flush()
    return features


def feature_dataset(features, labels, batch_size, training=False, seed=0):
    """``((batch, c) features, (batch,) labels)`` batches; shuffled like ``data.make_dataset`` if training.

    Indices are shuffled, not the features: the permutation is then the one the file list
    gets in the uncached path, and a memory-mapped array is read one batch at a time.
    """
    import tensorflow as tf

    labels = np.asarray(labels, np.int32)
    indices = tf.data.Dataset.range(len(labels))
    if training:
        indices = indices.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=training)
    if isinstance(features, np.memmap):
        def gather(index):
            return np.asarray(features[index], np.float32), labels[index]  # reads only these rows

        def read(index):
            rows, picked = tf.numpy_function(gather, [index], (tf.float32, tf.int32), stateful=False)
            return tf.ensure_shape(rows, (None, features.shape[1])), tf.ensure_shape(picked, (None,))

        dataset = indices.map(read)
    else:
        table, label_table = tf.constant(features), tf.constant(labels)
        dataset = indices.map(lambda index: (tf.gather(table, index), tf.gather(label_table, index)))
    return dataset.prefetch(tf.data.AUTOTUNE)


@contextlib.contextmanager
def phase1_data(model, config, run_dir, splits, train_data, val_data, say=print):
    """Yield phase 1's ``(train, val)`` inputs: cached features if ``config.cache``, else the image datasets.

    Cached: ``train`` is a ``CachedFeatures`` (``train.train_phase`` fits its head) and
    ``val`` a features dataset. A spilled cache is removed on exit unless ``keep_cache``.
    """
    if not config.cache:
        yield train_data, val_data
        return
    from keras_notes.finetune.data import make_eval_dataset

    extractor = feature_extractor(model)
    channels = extractor.output.shape[-1]
    needed = (len(splits.train) + len(splits.val)) * channels * 4 / MIB
    budget = resolve_budget(config.cache_budget)
    spill = needed > budget
    cache_dir = os.path.join(run_dir, CACHE_DIR)
    if spill:
        os.makedirs(cache_dir, exist_ok=True)
    where = f"on disk in {cache_dir}" if spill else "in RAM"
    say(f"phase 1 caches the frozen part's output: {len(splits.train) + len(splits.val)} images x "
        f"{channels} features = {needed:.1f} MiB {where} (budget {budget:g} MiB)")
    try:
        arrays = []
        for name, files in (("train", splits.train), ("val", splits.val)):
            images = make_eval_dataset(files, config.image_size, config.batch_size)
            path = os.path.join(cache_dir, f"{name}_features.npy") if spill else None
            arrays.append(extract_features(extractor, images, len(files), path))
        train_features = CachedFeatures(
            head_model(model),
            feature_dataset(arrays[0], splits.train.labels, config.batch_size, training=True, seed=config.seed))
        yield train_features, feature_dataset(arrays[1], splits.val.labels, config.batch_size)
    finally:
        if spill and not config.keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
