"""From a scanned image folder to ``tf.data`` pipelines of raw 0-255 float32 images.

The pipeline starts from file lists, not ``keras.utils.image_dataset_from_directory``,
for three reasons: the split is stratified per class, a file list can be sharded per
worker before anything is decoded, and the few files TensorFlow cannot decode
(``ScanResult.needs_pil``) go through PIL instead of stopping ``fit``.

Shapes: a training batch is ``images (batch, size, size, 3) float32`` in 0-255 (the
arch's preprocessing is inside the model) and ``labels (batch,) int32``.
"""

import dataclasses

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.scan import load_image_rgb, scan_image_folder

# Augmentation strengths: small enough that a digit or an object stays recognisable.
ROTATION_FACTOR = 0.1  # a fraction of a full turn: up to +-36 degrees
ZOOM_FACTOR = 0.1  # up to 10% in or out


@dataclasses.dataclass(frozen=True)
class FileList:
    """Image files with their labels; ``needs_pil[i]`` routes file i through PIL."""

    paths: tuple
    labels: tuple
    needs_pil: tuple

    def __len__(self):
        return len(self.paths)

    def __add__(self, other):
        """The files of ``self``, then those of ``other``."""
        return FileList(self.paths + other.paths, self.labels + other.labels, self.needs_pil + other.needs_pil)

    def subset(self, indices):
        """The files at ``indices``, in that order."""
        return FileList(*(tuple(column[i] for i in indices) for column in (self.paths, self.labels, self.needs_pil)))

    def counts(self, num_classes):
        """Images per class, as a list indexed by label."""
        return np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=num_classes).tolist()


@dataclasses.dataclass(frozen=True)
class Splits:
    """The training and validation files of a run, and the files the scans skipped."""

    class_names: tuple
    train: FileList
    val: FileList
    skipped: tuple  # (path, reason) for every file not used, from both folders


def file_list(scan):
    """The ``FileList`` of a ``ScanResult`` (every file TensorFlow-decodable when the scan says nothing)."""
    needs_pil = tuple(scan.needs_pil) or (False,) * len(scan.paths)
    return FileList(tuple(scan.paths), tuple(scan.labels), needs_pil)


def stratified_split(files, class_names, val_split, seed):
    """``(train, val)``: ``round(n * val_split)`` images of each class (at least 1) go to validation.

    Which images is decided by a NumPy generator seeded with ``seed``, class by class,
    so the split is the same on every run and every machine. Each class keeps at
    least one training image; a class too small for that raises ``KerasNotesError``.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(files.labels)
    train, val = [], []
    for label, name in enumerate(class_names):
        members = np.flatnonzero(labels == label)
        n_val = max(1, int(round(len(members) * val_split)))
        if len(members) - n_val < 1:
            raise KerasNotesError(
                f"class {name!r} has {len(members)} image(s), too few for val_split={val_split}: each class "
                f"needs at least 1 training and 1 validation image")
        chosen = rng.permutation(members)
        val.extend(chosen[:n_val].tolist())
        train.extend(chosen[n_val:].tolist())
    return files.subset(sorted(train)), files.subset(sorted(val))


def load_splits(data_dir, val_dir=None, val_split=0.2, seed=0):
    """Scan the folder(s) and return ``Splits``: a seeded stratified split, or ``val_dir``'s files."""
    scan = scan_image_folder(data_dir)
    files = file_list(scan)
    skipped = tuple(scan.skipped)
    if val_dir is None:
        train, val = stratified_split(files, scan.class_names, val_split, seed)
    else:
        val_scan = scan_image_folder(val_dir, class_names=scan.class_names)
        train, val = files, file_list(val_scan)
        skipped += tuple(val_scan.skipped)
    return Splits(tuple(scan.class_names), train, val, skipped)


def _decode_with_pil(path):
    return load_image_rgb(path.decode() if isinstance(path, bytes) else path)  # (h, w, 3) uint8


def decode_image(path, needs_pil, image_size):
    """One file -> ``(image_size, image_size, 3)`` float32 RGB in 0-255.

    TensorFlow decodes JPEG/PNG/GIF/BMP by their content; grayscale and RGBA become
    RGB through ``channels=3``. Files the scan flagged ``needs_pil`` are decoded by
    PIL (``scan.load_image_rgb``, inside ``tf.numpy_function``) at full size, so
    that both kinds are resized by the same ``tf.image.resize`` call.
    """
    import tensorflow as tf

    def with_tensorflow():
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    def with_pil():
        image = tf.numpy_function(_decode_with_pil, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, (None, None, 3))

    image = tf.cond(needs_pil, with_pil, with_tensorflow)  # (h, w, 3) uint8
    image = tf.image.resize(image, (image_size, image_size))  # bilinear; float32 in 0-255
    return tf.ensure_shape(image, (image_size, image_size, 3))


def image_dataset(files, image_size, shuffle=False, seed=0):
    """Unbatched ``(image, label)`` pairs, decoded in parallel; shuffled (seeded) if asked.

    Shuffling happens on the file names, before decoding, so the buffer holds the whole
    list for the cost of its strings, and a new order is drawn every epoch.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(
        (list(files.paths), np.asarray(files.labels, dtype=np.int32), np.asarray(files.needs_pil, dtype=bool)))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return dataset.map(lambda path, label, pil: (decode_image(path, pil, image_size), label),
                       num_parallel_calls=tf.data.AUTOTUNE)


def make_augmentation(names, seed=0):
    """A ``keras.Sequential`` of the random layers in ``names`` (flip, rotation, zoom), or None."""
    import keras

    builders = {
        "flip": lambda: keras.layers.RandomFlip("horizontal", seed=seed, name="flip"),
        "rotation": lambda: keras.layers.RandomRotation(ROTATION_FACTOR, seed=seed, name="rotation"),
        "zoom": lambda: keras.layers.RandomZoom(ZOOM_FACTOR, seed=seed, name="zoom"),
    }
    unknown = [name for name in names if name not in builders]
    if unknown:
        raise KerasNotesError(f"unknown augmentation {unknown}; choose from {sorted(builders)}")
    if not names:
        return None
    return keras.Sequential([builders[name]() for name in names], name="augmentation")


def make_dataset(files, image_size, batch_size, training=False, seed=0, augment=()):
    """Batched, prefetched ``(images, labels)`` for training: shuffled, and augmented if asked.

    ``batch_size`` is the global batch; under a multi-replica strategy Keras's ``fit``
    splits each batch among the replicas. The last partial batch is dropped: every step
    then gives each replica the same number of images (a final batch smaller than the
    replica count would leave a replica with none, and batch norm trained on an empty
    batch fails), and steps per epoch are ``len(files) // batch_size`` whatever the
    strategy. The shuffle draws a new order each epoch, so a different remainder is
    left out each time. ``training=False`` gives ``make_eval_dataset(files, ...)``.

    Augmentation runs on whole batches inside the pipeline, on the CPU, overlapping
    with training through ``prefetch``.
    """
    import tensorflow as tf

    if not training:
        return make_eval_dataset(files, image_size, batch_size)
    if len(files) < batch_size:
        raise KerasNotesError(f"batch_size={batch_size} is more than the {len(files)} training images; "
                              f"pass a batch size of at most {len(files)}")
    dataset = image_dataset(files, image_size, shuffle=True, seed=seed).batch(batch_size, drop_remainder=True)
    augmentation = make_augmentation(augment, seed)
    if augmentation is not None:
        dataset = dataset.map(lambda images, labels: (augmentation(images, training=True), labels),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_eval_dataset(files, image_size, batch_size, replicas=1):
    """Every image once, in order, batched: ``(images, labels)``, or with several replicas
    ``(images, labels, sample_weights)``.

    With ``replicas > 1`` the list is padded with ``(-len(files)) % replicas`` copies of
    its first image, weighted 0, so that every batch splits evenly: Keras 3.15's
    distributed ``evaluate`` and ``predict`` fail on a batch that leaves replicas with
    different numbers of images (its symbolic build reduces the first batch across
    replicas, and batch norm fails on an empty share). The zero weights keep the padding
    out of the accuracy; the loss of the one padded batch is averaged over the padding
    too, so ``val_loss`` can read up to ``(replicas - 1) / len(files)`` low. Callers
    of ``predict`` drop the rows past ``len(files)``.
    """
    import tensorflow as tf

    pad = (-len(files)) % replicas
    if not pad and replicas == 1:
        dataset = image_dataset(files, image_size)
    else:
        padded = files + files.subset([0] * pad)
        weights = tf.data.Dataset.from_tensor_slices(np.asarray([1.0] * len(files) + [0.0] * pad, np.float32))
        dataset = tf.data.Dataset.zip(image_dataset(padded, image_size), weights).map(
            lambda pair, weight: (*pair, weight))
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
