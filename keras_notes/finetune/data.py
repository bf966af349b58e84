"""From a scanned image folder to ``tf.data`` pipelines of raw 0-255 float32 images.

The pipeline starts from file lists, not ``keras.utils.image_dataset_from_directory``,
for three reasons: the split is stratified per class, a file list can be sharded per
worker before anything is decoded, and the few files TensorFlow cannot decode
(``ScanResult.needs_pil``) go through PIL instead of stopping ``fit``.

Every file is read the same way wherever it is read (training, validation, the
cached pass, ``predict``): decoded (a large JPEG at a reduced DCT scale,
``_decode_jpeg``), turned upright by its EXIF orientation (``exif.orient``), then
resized by one ``tf.image.resize`` call.

Shapes: a training batch is ``images (batch, size, size, 3) float32`` in 0-255 (the
arch's preprocessing is inside the model) and ``labels (batch,) int32``.
"""

import dataclasses

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.exif import UPRIGHT, orient
from keras_notes.finetune.imagefile import load_image_rgb
from keras_notes.finetune.scan import scan_image_folder

# Augmentation strengths: small enough that a digit or an object stays recognisable.
ROTATION_FACTOR = 0.1  # a fraction of a full turn: up to +-36 degrees
ZOOM_FACTOR = 0.1  # up to 10% in or out


# Reduced-scale JPEG decoding: libjpeg decodes at 1/2, 1/4 or 1/8 of the size straight
# from the DCT coefficients. A 4032 x 3024 photo took 1.85x less CPU time to read, decode
# and resize to 224 px at 1/8 than whole (23.9 against 44.2 ms; docs/photos.md).
JPEG_RATIOS = (8, 4, 2, 1)  # largest reduction first; 1 is the whole image


@dataclasses.dataclass(frozen=True)
class FileList:
    """Image files with their labels; ``needs_pil[i]`` routes file i through PIL,
    ``orientation[i]`` (EXIF, 1-8) says how to turn it upright (all 1 when not given), and
    ``deferred[i]`` marks a JPEG not decoded yet by the scan (all False when not given)."""

    paths: tuple
    labels: tuple
    needs_pil: tuple
    orientation: tuple = ()
    deferred: tuple = ()

    def __post_init__(self):
        if not self.orientation:
            object.__setattr__(self, "orientation", (UPRIGHT,) * len(self.paths))
        if not self.deferred:
            object.__setattr__(self, "deferred", (False,) * len(self.paths))

    def __len__(self):
        return len(self.paths)

    def _columns(self):
        return self.paths, self.labels, self.needs_pil, self.orientation, self.deferred

    def __add__(self, other):
        """The files of ``self``, then those of ``other``."""
        return FileList(*(mine + theirs for mine, theirs in zip(self._columns(), other._columns())))

    def subset(self, indices):
        """The files at ``indices``, in that order."""
        return FileList(*(tuple(column[i] for i in indices) for column in self._columns()))

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
    notes: tuple = ()  # (path, note) for used files with a remark: a damaged EXIF block, ignored

    def orientation_report(self, limit=10):
        """Lines for the run's start: how many images their EXIF tag turns, then the first ``limit`` notes."""
        turned = sum(value != UPRIGHT for files in (self.train, self.val) for value in files.orientation)
        lines = [f"EXIF orientation: {turned} images turned upright as they are displayed (--ignore-exif to use "
                 f"them as stored)"] if turned else []
        shown = self.notes[:limit]
        lines += [f"  note {path}: {note}" for path, note in shown]
        if len(shown) < len(self.notes):
            lines.append(f"  note ... and {len(self.notes) - len(shown)} more")
        return lines


def file_list(scan):
    """The ``FileList`` of a ``ScanResult`` (every file TensorFlow-decodable and upright when the
    scan says nothing)."""
    needs_pil = tuple(scan.needs_pil) or (False,) * len(scan.paths)
    return FileList(tuple(scan.paths), tuple(scan.labels), needs_pil, tuple(scan.orientation), tuple(scan.deferred))


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


def load_splits(data_dir, val_dir=None, val_split=0.2, seed=0, ignore_exif=False, defer_jpeg=False, memo_dir=None):
    """Scan the folder(s) and return ``Splits``: a seeded stratified split, or ``val_dir``'s files.

    ``ignore_exif``: read no EXIF orientation; every image is used as stored.
    ``defer_jpeg``: check JPEGs' headers only (``FileList.deferred``); the caller must
    judge them when it decodes them (the frozen pass, ``judged_dataset``) or check them
    with ``check_deferred`` before anything else decodes them. ``memo_dir``: reuse the checks
    of files unchanged since an earlier scan (``scan_memo``, kept beside the kept outputs).
    """
    scan = scan_image_folder(data_dir, exif=not ignore_exif, defer_jpeg=defer_jpeg, memo_dir=memo_dir)
    files = file_list(scan)
    skipped, notes = tuple(scan.skipped), tuple(scan.notes)
    if val_dir is None:
        train, val = stratified_split(files, scan.class_names, val_split, seed)
    else:
        val_scan = scan_image_folder(val_dir, class_names=scan.class_names, exif=not ignore_exif,
                                     defer_jpeg=defer_jpeg, memo_dir=memo_dir)
        train, val = files, file_list(val_scan)
        skipped += tuple(val_scan.skipped)
        notes += tuple(val_scan.notes)
    return Splits(tuple(scan.class_names), train, val, skipped, notes)


def without_files(splits, damaged, val_split, seed, val_dir=None):
    """``splits`` with the ``damaged`` ``(path, reason)`` files skipped, split as a scan without them splits.

    The files go back into scan order (by class, then path: within a class every path
    starts with the class folder) and are split again with the same seed, so the result
    is what ``load_splits`` gives when its scan skips those files. With a validation
    folder each list just loses them. Every file left is marked judged (not deferred).
    """
    gone = {path for path, _ in damaged}
    skipped = splits.skipped + tuple(damaged)
    if val_dir is None:
        every = splits.train + splits.val
        order = sorted(range(len(every)), key=lambda i: (every.labels[i], every.paths[i]))
        kept = every.subset([i for i in order if every.paths[i] not in gone])
        train, val = stratified_split(kept, splits.class_names, val_split, seed)
    else:
        train, val = (files.subset([i for i, path in enumerate(files.paths) if path not in gone])
                      for files in (splits.train, splits.val))
    judged = [dataclasses.replace(files, deferred=(False,) * len(files)) for files in (train, val)]
    notes = tuple(note for note in splits.notes if note[0] not in gone)
    return dataclasses.replace(splits, train=judged[0], val=judged[1], skipped=skipped, notes=notes)


def check_deferred(splits, val_split, seed, val_dir=None, ignore_exif=False):
    """Decode-check the files the scan deferred (``scan.check_images``); -> ``(splits, damaged)``.

    For runs that decode images outside the frozen pass: the check the scan would have made.
    """
    from keras_notes.finetune.scan import check_images

    every = splits.train + splits.val
    deferred = [path for path, waiting in zip(every.paths, every.deferred) if waiting]
    verdicts = check_images(deferred, exif=not ignore_exif)
    damaged = tuple((path, verdict.reason) for path, verdict in zip(deferred, verdicts) if verdict.reason is not None)
    return without_files(splits, damaged, val_split, seed, val_dir), damaged


def judged_dataset(files, image_size, batch_size):
    """Every image once, in order, batched as ``(images, indices)``; a file that fails to decode is left out.

    ``indices`` are positions in ``files``, so the caller sees which files the pass could
    not read (``tf.data``'s ``ignore_errors`` drops the element whose decode raised). The
    images are ``image_dataset``'s, with each file's position in place of its label.
    """
    import tensorflow as tf

    positions = dataclasses.replace(files, labels=tuple(range(len(files))))
    return image_dataset(positions, image_size).ignore_errors().batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _decode_with_pil(path):
    path = path.item() if isinstance(path, np.ndarray) else path  # a 0-d array when called outside tf.data
    return load_image_rgb(path.decode() if isinstance(path, bytes) else path)  # (h, w, 3) uint8


def _decode_jpeg(contents, image_size):
    """JPEG bytes -> ``(h, w, 3)`` uint8, at the largest reduction in ``JPEG_RATIOS`` that keeps
    both sides at least ``image_size``; an image smaller than that is decoded whole.

    libjpeg's output at ``1/ratio`` has sides ``ceil(side / ratio)`` (jdiv_round_up).
    ``decode_jpeg``'s ``ratio`` is fixed when the graph is built, so each ratio is its own
    branch, picked from the header (``extract_jpeg_shape`` reads no entropy-coded data).
    """
    import tensorflow as tf

    short = tf.reduce_min(tf.io.extract_jpeg_shape(contents)[:2])  # int32

    def at(ratio):
        return lambda: tf.io.decode_jpeg(contents, channels=3, ratio=ratio)

    reductions = [((short + ratio - 1) // ratio >= image_size, at(ratio)) for ratio in JPEG_RATIOS if ratio > 1]
    if not reductions:  # JPEG_RATIOS == (1,): always whole
        return at(1)()
    # The first true test wins (exclusive=False): the largest reduction that fits.
    return tf.case(reductions, default=at(1), exclusive=False)


def decode_image(path, needs_pil, image_size, orientation=UPRIGHT, reduce=True):
    """One file -> ``(image_size, image_size, 3)`` float32 RGB in 0-255, upright.

    TensorFlow decodes JPEG/PNG/GIF/BMP by their content; grayscale and RGBA become
    RGB through ``channels=3``. A JPEG is decoded at the largest DCT reduction that keeps
    both sides at least ``image_size`` (``_decode_jpeg``; ``reduce=False`` decodes it
    whole). Files the scan flagged ``needs_pil`` are decoded by PIL
    (``imagefile.load_image_rgb``, inside ``tf.numpy_function``) at full size. Then every
    image is turned by its EXIF ``orientation`` and resized by the same
    ``tf.image.resize`` call. ``needs_pil`` and ``orientation`` are tensors, or Python
    values known for every file.
    """
    import tensorflow as tf

    def with_tensorflow():
        contents = tf.io.read_file(path)
        whole = lambda: tf.io.decode_image(contents, channels=3, expand_animations=False)  # noqa: E731
        if not reduce:
            return whole()
        return tf.cond(tf.io.is_jpeg(contents), lambda: _decode_jpeg(contents, image_size), whole)

    def with_pil():
        image = tf.numpy_function(_decode_with_pil, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, (None, None, 3))

    # A Python value decides while the graph is built: no branch for what no file needs.
    if isinstance(needs_pil, (bool, np.bool_)):
        image = with_pil() if needs_pil else with_tensorflow()
    else:
        image = tf.cond(needs_pil, with_pil, with_tensorflow)  # (h, w, 3) uint8, as stored
    if not (isinstance(orientation, int) and orientation == UPRIGHT):
        image = orient(image, orientation)  # upright: (w, h, 3) for orientations 5-8
    image = tf.image.resize(image, (image_size, image_size))  # bilinear; float32 in 0-255
    return tf.ensure_shape(image, (image_size, image_size, 3))


def image_dataset(files, image_size, shuffle=False, seed=0, reduce=True):
    """Unbatched ``(image, label)`` pairs, decoded in parallel; shuffled (seeded) if asked.

    Shuffling happens on the file names, before decoding, so the buffer holds the whole
    list for the cost of its strings, and a new order is drawn every epoch. ``reduce``:
    see ``decode_image``. When no file needs Pillow, or none is turned, the graph has no
    branch for it (a branch per image cost up to 1 ms inside ``tf.data``, measured).
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices(
        (list(files.paths), np.asarray(files.labels, dtype=np.int32), np.asarray(files.needs_pil, dtype=bool),
         np.asarray(files.orientation, dtype=np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    any_pil = any(files.needs_pil)
    any_turned = any(value != UPRIGHT for value in files.orientation)

    def decode(path, label, pil, turn):
        return decode_image(path, pil if any_pil else False, image_size, turn if any_turned else UPRIGHT,
                            reduce), label

    return dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE)


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
