"""Run the frozen part of the model once per phase, and train the rest on its output.

A phase computes the frozen part's output (``frozen_part``: where the model is cut)
once per image, keeps it, and trains only what lies above it.

The batches come in the same order as the uncached path's: the kept outputs are
shuffled as indices ``0..n-1`` with the phase's seed and the same
``reshuffle_each_iteration`` shuffle that ``data.image_dataset`` applies to the file
list, and the same dropout layer draws the same masks. What differs is float
round-off: the frozen part runs in inference batches, not inside the training step
(measured here: losses, weights and predictions bitwise equal to the uncached run's;
tests/test_cache.py).

One pass for both phases: when phase 2 will run on a base that phase 1 keeps frozen,
phase 1's pass also keeps the outputs at phase 2's cut (``RunCache``), and phase 2 runs
no pass of its own.

Memory: phase 1 keeps ``n * c * 4`` bytes (MobileNet: 4 KiB an image); phase 2 keeps
the activations at its cut (MobileNet cut at conv_pad_12, 224 px: 15 * 15 * 512 * 4 =
450 KiB an image). Up to ``cache_budget`` MiB they stay in RAM; beyond it they go to
NumPy memory-mapped files under ``<run>/cache/``, written batch by batch so that the
pass itself stays at bounded memory, read a batch at a time, and removed at the end of
the run unless ``keep_cache``.
"""

import contextlib
import dataclasses
import math
import os
import shutil

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune.data import make_eval_dataset
from keras_notes.finetune.frozen_part import split_frozen, with_pooled_output

CACHE_DIR = "cache"  # under the run folder, for outputs that do not fit the RAM budget
DEFAULT_BUDGET_FRACTION = 0.5  # of MemAvailable: the rest is for TensorFlow, the batches and the OS
FALLBACK_BUDGET_MIB = 1024  # when /proc/meminfo cannot be read (not Linux)
MIB = 2 ** 20
# The frozen pass runs in batches of its own, whatever the training batch: MobileNet at 224 px
# took the least CPU time an image in batches of 32 (10.1 ms, against 10.4-10.6 ms in batches
# of 64, 128 and 256; docs/photos.md), which also hold the fewest images in memory. Each
# image's output is the same at any batch size (bit for bit, 32 against 256).
PASS_BATCH_SIZE = 32


def backup_phase(phase):
    """The backup folder's suffix for a cached phase (``checkpoints/phase1-cached``).

    A cached phase backs up the trained part only, which does not load into the full
    model, so it never shares a folder with the uncached phase.
    """
    return f"{phase}-cached"


@dataclasses.dataclass(frozen=True)
class CachedPhase:
    """A phase's input when cached: the part to fit, and its ``(kept outputs, labels)`` datasets."""

    model: object  # frozen_part.FrozenSplit.trainable, compiled with the full model's optimizer
    train: object  # tf.data.Dataset of (kept outputs, (batch,) int32), shuffled per epoch
    val: object  # the same for the validation images, in order


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
    """Whether the run may cache frozen parts: ``config.cache``, or on when it trains the same model.

    Augmentation makes it impossible (an augmented image differs every epoch, so does
    everything computed from it), and ``cache=True`` with augmentation is an error. More
    than one replica turns it off: the cached part is fitted without the sample-weight
    padding that several replicas need. Which phase has a frozen part to cache is
    decided when the phase starts (``frozen_part.split_frozen``).
    """
    if config.cache and config.augment:
        raise KerasNotesError(f"cannot cache the frozen part's output: augmentation {list(config.augment)} "
                              f"changes the images every epoch; received cache=True")
    return (not config.augment if config.cache is None else bool(config.cache)) and replicas == 1


def _output_arrays(extractor, count, paths=None):
    """One ``(count, *shape)`` float32 array per output of ``extractor``: in RAM, or ``.npy`` memory maps at ``paths``."""
    shapes = [tuple(output.shape[1:]) for output in extractor.outputs]
    if paths is None:
        return [np.empty((count, *shape), np.float32) for shape in shapes]
    return [np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(count, *shape))
            for path, shape in zip(paths, shapes)]


def _forward(extractor):
    import tensorflow as tf

    # One traced function for all batches (a short last batch retraces once, with a relaxed shape).
    return tf.function(lambda images: extractor(images, training=False), reduce_retracing=True)


def _flush(arrays):
    for array in arrays:
        if isinstance(array, np.memmap):
            array.flush()


def extract_features(extractor, dataset, count, paths=None):
    """Run ``extractor`` over ``dataset`` batch by batch; -> one ``(count, *shape)`` float32 array per output.

    ``paths`` (one per output) gives ``.npy`` memory-mapped files instead of in-RAM
    arrays; either way only one batch of images is in memory at a time. An extractor
    with one output gives one array, not a list.
    """
    arrays = _output_arrays(extractor, count, paths)
    forward = _forward(extractor)
    start = 0
    for batch in dataset:
        values = forward(batch[0] if isinstance(batch, (tuple, list)) else batch)
        values = values if isinstance(values, (list, tuple)) else [values]
        for array, value in zip(arrays, values):
            array[start:start + len(value)] = np.asarray(value, np.float32)
        start += len(values[0])
    if start != count:
        raise KerasNotesError(f"feature pass gave {start} rows for {count} images")
    _flush(arrays)
    return arrays if len(arrays) > 1 else arrays[0]


def extract_judged(extractor, files, image_size, paths=None):
    """``extract_features`` over ``files`` that also judges them: -> ``(arrays, failed)``.

    A file whose decode fails is left out of the pass (``data.judged_dataset``); ``failed``
    lists the positions in ``files`` of those files, whose rows hold nothing. Always a
    list of arrays.
    """
    from keras_notes.finetune.data import judged_dataset

    arrays = _output_arrays(extractor, len(files), paths)
    forward = _forward(extractor)
    seen = np.zeros(len(files), bool)
    for images, indices in judged_dataset(files, image_size, PASS_BATCH_SIZE):
        values = forward(images)
        values = values if isinstance(values, (list, tuple)) else [values]
        rows = np.asarray(indices)
        for array, value in zip(arrays, values):
            array[rows] = np.asarray(value, np.float32)
        seen[rows] = True
    _flush(arrays)
    return arrays, np.flatnonzero(~seen).tolist()


# Three routes from kept outputs to batches, all giving the same batches (tests/test_cache.py):
# - in RAM up to SLICE_ROWS_MIB: tf.data slices the rows and shuffles them itself. No map
#   function: an iterator costs 0.5 ms instead of 5.5 ms (its instantiation), and fit makes
#   two per epoch for training and two for validation, 0.2 s of 10 head epochs on a 2-core CPU.
#   The shuffle buffer holds a copy of the rows, hence the bound.
# - in RAM up to GATHER_IN_TENSORFLOW_MIB: indices are shuffled and each batch is gathered
#   from one tensor by tf.gather in a map function.
# - beyond it, and for memory-mapped files: gathered by NumPy in tf.numpy_function, one batch
#   read at a time. That costs a Python call and the GIL per batch: 10 head epochs on 800
#   MobileNet features took 6.0 s through it and 1.3 s through tf.gather (docs/kept-cache.md).
SLICE_ROWS_MIB = 64
GATHER_IN_TENSORFLOW_MIB = 512


def feature_dataset(features, labels, batch_size, training=False, seed=0):
    """``(kept outputs, (batch,) labels)`` batches; shuffled like ``data.make_dataset`` if training.

    ``features`` is one array or a list of arrays (one per kept tensor), in RAM or
    memory-mapped. The permutation is the one the file list gets in the uncached path:
    ``shuffle`` permutes ``n`` elements by its seed alone, whether they are rows or indices.
    A large in-RAM array is not copied into a shuffle buffer, and a memory-mapped one is read
    one batch at a time (the routes above).
    """
    import tensorflow as tf

    arrays = list(features) if isinstance(features, (list, tuple)) else [features]
    labels = np.asarray(labels, np.int32)

    def pack(rows, picked):
        return (rows[0] if len(rows) == 1 else tuple(rows)), picked

    def shuffled(dataset):
        return dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True) if training else dataset

    in_ram = not any(isinstance(array, np.memmap) for array in arrays)
    size = sum(array.nbytes for array in arrays)
    if in_ram and size <= SLICE_ROWS_MIB * MIB:
        rows = tf.data.Dataset.from_tensor_slices(pack([np.asarray(array, np.float32) for array in arrays], labels))
        return shuffled(rows).batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
    indices = shuffled(tf.data.Dataset.range(len(labels)))
    if in_ram and size <= GATHER_IN_TENSORFLOW_MIB * MIB:
        tensors = [tf.constant(np.asarray(array, np.float32)) for array in arrays]
        label_tensor = tf.constant(labels)

        def read(index):
            return pack([tf.gather(tensor, index) for tensor in tensors], tf.gather(label_tensor, index))
    else:
        def gather(index):
            return (*(np.asarray(array[index], np.float32) for array in arrays), labels[index])

        def read(index):
            *rows, picked = tf.numpy_function(gather, [index], [tf.float32] * len(arrays) + [tf.int32],
                                              stateful=False)
            rows = [tf.ensure_shape(row, (None, *array.shape[1:])) for row, array in zip(rows, arrays)]
            return pack(rows, tf.ensure_shape(picked, (None,)))

    # Plain Python over tensors, nothing for autograph to convert (it took 0.1 s of a rerun).
    read = tf.autograph.experimental.do_not_convert(read)
    return indices.batch(batch_size, drop_remainder=training).map(read).prefetch(tf.data.AUTOTUNE)


# A cached phase's steps are tiny (a head on kept vectors), and Keras's per-call overhead then
# dominates: one call per epoch, up to this many steps, made 10 MobileNet head epochs on 800
# kept outputs 0.8 s faster after tracing (docs/kept-cache.md). The results are the same bit for
# bit (the same steps run inside one graph loop); callbacks see one batch end per call, so the
# guard checks signals and the loss every ``MAX_CACHED_STEPS_PER_EXECUTION`` steps at most.
MAX_CACHED_STEPS_PER_EXECUTION = 64


def cached_steps_per_execution(train_images, batch_size):
    """Steps per train-function call of a cached phase: an epoch's (``drop_remainder``), capped."""
    return max(1, min(train_images // batch_size, MAX_CACHED_STEPS_PER_EXECUTION))


def _describe(boundary):
    return " + ".join(f"{name} {shape}" for name, shape in boundary)


class RunCache:
    """The frozen parts' outputs of one run, computed once and kept for the phases that can use them.

    ``phase`` gives a phase its ``CachedPhase`` (or None). When phase 1 is told phase 2's
    first trained layer, its one pass also keeps the outputs at phase 2's cut, and phase 2
    trains on them without a pass of its own: the base is frozen in phase 1, so those
    outputs are what phase 2's frozen part computes. Outputs beyond the RAM budget go
    to memory-mapped files under ``<run>/cache``; ``close`` removes them unless
    ``keep_cache``. Use it as a context manager.
    """

    def __init__(self, config, run_dir, splits, say=print, strategy=None):
        self.config, self.splits, self.say = config, splits, say
        self.strategy = strategy  # the trained parts are built and compiled in its scope, as the model was
        self.directory = os.path.join(run_dir, CACHE_DIR)
        self.budget = resolve_budget(config.cache_budget)
        self.in_ram_mib = 0.0
        self.ready = {}  # boundary -> arrays computed by an earlier pass, for the phase that cuts there
        self.damaged = ()  # (path, reason) of deferred files the first pass could not decode

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        self.ready = {}
        if not self.config.keep_cache:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _cuts(self, model, next_first_trained):
        """``(split, ahead)``: the model's frozen part now, and at the layer phase 2 will train first (or None)."""
        steps = cached_steps_per_execution(len(self.splits.train), self.config.batch_size)
        with self.strategy.scope() if self.strategy is not None else contextlib.nullcontext():
            split = split_frozen(model, steps_per_execution=steps) if self.config.cache else None
            ahead = (split_frozen(model, next_first_trained, steps) if split and next_first_trained is not None
                     else None)
        return split, ahead

    def prepare(self, model, next_first_trained=None):
        """Judge the files the scan deferred (``data.load_splits(defer_jpeg=True)``); -> the run's splits.

        When phase 1 is cached, its one pass is run now and decodes them anyway: a file it
        cannot decode is dropped and the rest split again (``data.without_files``). Otherwise
        they are checked as the scan would have. ``damaged`` then lists what was dropped.
        Call it before anything else decodes the images.
        """
        from keras_notes.finetune.data import check_deferred

        files = self.splits.train + self.splits.val
        if not any(files.deferred):
            return self.splits
        split, ahead = self._cuts(model, next_first_trained)
        if split is None:
            config = self.config
            self.splits, self.damaged = check_deferred(self.splits, config.val_split, config.seed, config.val_dir,
                                                       config.ignore_exif)
        else:
            self.ready[split.boundary] = self._outputs(model, 1, split, ahead)
        return self.splits

    def pooled_outputs(self, model):
        """The frozen base's pooled output over the run's images, ``(n, c)`` float32 (kept cache included).

        For a model whose whole base is frozen (phase 1's cut); ``splits`` afterwards has
        the files the pass could not decode taken out (``prepare``).
        """
        split, _ = self._cuts(model, None)
        if split is None or len(split.boundary) != 1:
            raise KerasNotesError(f"the frozen base's pooled output needs the whole base frozen; model "
                                  f"{model.name!r} has trainable base layers")
        return self._outputs(model, 1, split, None)[0]

    def phase(self, model, phase, seed, next_first_trained=None):
        """The ``CachedPhase`` of the compiled ``model`` as it stands for ``phase``, or None.

        ``next_first_trained``: the first layer phase 2 will train, to keep its cut too.
        """
        split, ahead = self._cuts(model, next_first_trained)
        if split is None:
            if self.config.cache:
                self.say(f"phase {phase}: nothing frozen to keep below the first trained layer; every step runs "
                         f"the whole model")
            return None
        if split.boundary in self.ready:
            kept = self.ready.pop(split.boundary)
            if phase > 1:
                self.say(f"phase {phase} trains on the output at {_describe(split.boundary)} kept by phase 1's pass")
        else:
            kept = self._outputs(model, phase, split, ahead)
        cut = len(self.splits.train)
        batch = self.config.batch_size
        train = feature_dataset([array[:cut] for array in kept], self.splits.train.labels, batch, training=True,
                                seed=seed)
        val = feature_dataset([array[cut:] for array in kept], self.splits.val.labels, batch)
        return CachedPhase(split.trainable, train, val)

    def _outputs(self, model, phase, split, ahead):
        """One pass at ``split``'s cut (and ``ahead``'s, kept for phase 2); -> the arrays at ``split``'s."""
        extractor = split.extractor if ahead is None else with_pooled_output(model, ahead)
        kept = self._extract(model, extractor, phase, (ahead.boundary if ahead else ()) + split.boundary)
        if ahead is not None:
            self.ready[ahead.boundary] = kept[:-1]
            kept = kept[-1:]
        return kept

    def _entry(self, model, extractor, boundary):
        """The kept-cache entry for this pass (``kept.Entry``), or None with ``kept_cache=False``."""
        from keras_notes.finetune import kept

        if not self.config.kept_cache:
            return None
        key = kept.entry_key(self.config, extractor, boundary, model.get_layer("preprocessing").get_config())
        return kept.Entry(self.config.cache_dir, key, len(boundary))

    def _extract(self, model, extractor, phase, boundary):
        """One pass of ``extractor`` over the training then the validation images; -> a list of arrays.

        Images found in the kept cache (``kept.Entry``) are read from it; the pass runs over
        the rest only, and adds them. Deferred files are judged by the pass
        (``extract_judged``); the splits then lose those it could not decode, and the
        arrays their rows.
        """
        from keras_notes.finetune import kept as kept_cache

        files = self.splits.train + self.splits.val
        per_image = sum(math.prod(shape) for _, shape in boundary)
        needed = len(files) * per_image * 4 / MIB
        spill = self.in_ram_mib + needed > self.budget
        paths = None
        if spill:
            os.makedirs(self.directory, exist_ok=True)
            paths = [os.path.join(self.directory, f"phase{phase}_{index}.npy") for index in range(len(boundary))]
        else:
            self.in_ram_mib += needed
        entry = self._entry(model, extractor, boundary)
        lookup = None
        if entry is not None:
            identities = kept_cache.image_identities(
                files.paths, (("", self.config.data_dir), ("val_dir:", self.config.val_dir)))
            lookup = entry.lookup(identities)
            for path, why in lookup.dropped:
                self.say(f"kept cache: {path} could not be read ({why}); dropped, its images are computed again")
        missing = list(range(len(files))) if lookup is None else lookup.missing
        where = f"on disk in {self.directory}" if spill else "in RAM"
        source = "" if entry is None else (f"; {len(files) - len(missing)} found in the kept cache "
                                           f"{entry.directory}, {len(missing)} computed")
        verb = "runs the frozen part once and keeps its" if missing else "reads the frozen part's"
        self.say(f"phase {phase} {verb} output at {_describe(boundary)}: "
                 f"{len(files)} images x {per_image:,} values = {needed:.1f} MiB {where} "
                 f"(budget {self.budget:g} MiB){source}")
        if len(missing) == len(files):  # nothing kept yet: the pass writes the run's arrays itself
            arrays, failed = self._compute(extractor, files, paths)
        else:
            arrays = _output_arrays(extractor, len(files), paths)
            entry.gather(lookup, arrays, [index for index, place in enumerate(lookup.found) if place is not None])
            computed, failed_here = self._compute(extractor, files.subset(missing)) if missing else ([], [])
            for array, values in zip(arrays, computed):
                array[missing] = values
            failed = [missing[index] for index in failed_here]
            _flush(arrays)
        if entry is not None:
            if missing:
                unreadable = set(failed)
                added = [index for index in missing if index not in unreadable]
                entry.add([identities[index] for index in added], [array[added] for array in arrays])
                entry.compact()
            entry.touch()
            for gone in kept_cache.evict(entry.cache_dir, self.config.cache_limit, keep=(entry.directory,)):
                self.say(f"kept cache: evicted {gone.path} ({gone.bytes / MIB:.1f} MiB, least recently used) "
                         f"to stay within --cache-limit {self.config.cache_limit:g} GiB")
        if not any(files.deferred):
            return arrays
        return self._drop_damaged(arrays, files, failed)

    def _compute(self, extractor, files, paths=None):
        """The frozen pass over ``files``: -> ``(arrays, failed positions)``, judging deferred files."""
        if any(files.deferred):
            return extract_judged(extractor, files, self.config.image_size, paths)
        kept = extract_features(extractor, make_eval_dataset(files, self.config.image_size, PASS_BATCH_SIZE),
                                len(files), paths)
        return (kept if isinstance(kept, list) else [kept]), []

    def _drop_damaged(self, kept, files, failed):
        """After a judging pass: the splits without the files at ``failed``, and the arrays' matching rows."""
        from keras_notes.finetune.data import without_files
        from keras_notes.finetune.imagefile import check_image

        config = self.config
        # The scan's own check names the damage ("truncated JPEG", "corrupt JPEG (...)").
        damaged = []
        for index in failed:
            path = files.paths[index]
            reason = check_image(path, exif=not config.ignore_exif).reason
            damaged.append((path, reason or "corrupt JPEG (TensorFlow's JPEG decoder refuses it)"))
        self.damaged += tuple(damaged)
        self.splits = without_files(self.splits, damaged, config.val_split, config.seed, config.val_dir)
        if not failed:
            return kept
        position = {path: index for index, path in enumerate(files.paths)}
        rows = [position[path] for path in self.splits.train.paths + self.splits.val.paths]
        return [np.asarray(array[rows]) for array in kept]
