"""The multi-worker loop's input: each epoch's file order, its steps, and each worker's share of a batch.

- Each worker builds its own pipeline (``distribute_datasets_from_function``) from its
  shard of the *file list* (``Dataset.shard(num_workers, worker_id)`` before any
  decoding), with auto-sharding switched off explicitly.
- The global batch is the per-replica batch times the replicas. Every worker runs
  ``len(train) // global_batch`` steps per epoch. The last ``len(train) % global_batch``
  files of each epoch's order are dropped; the order changes every epoch, so every file
  is used over a run.
- Validation is padded to whole global batches with zero-weight copies instead, so every
  validation image counts exactly once.

Either way every worker runs the same number of steps, and none waits for a partial batch.
"""

import math

import numpy as np

from keras_notes.errors import KerasNotesError


def steps_per_epoch(num_examples, global_batch):
    """Training steps per epoch: ``num_examples // global_batch`` (the remainder is dropped)."""
    steps = num_examples // global_batch
    if steps < 1:
        raise KerasNotesError(f"{num_examples} training images do not fill one global batch of {global_batch} "
                              f"(per-replica batch x replicas); use a smaller batch")
    return steps


def epoch_order(num_examples, seed, epoch, shuffle=True):
    """The order of the training files in ``epoch``: a permutation drawn from ``(seed, epoch)``.

    A function of the epoch number rather than of an iterator's state, so a run that
    resumes at epoch k sees exactly the orders an uninterrupted run would have seen.
    """
    if not shuffle:
        return np.arange(num_examples)
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def dataset_fn(files, index, weights, global_batch, image_size, augmentation=None):
    """A ``dataset_fn(input_context)`` for ``distribute_datasets_from_function``.

    ``index`` lists the files of the whole cluster's epoch in order (``len(index)`` is a
    multiple of ``global_batch``); ``weights`` is 1 for a real example, 0 for padding.
    Worker w keeps positions w, w + W, w + 2W, ... (W workers), so the union of the
    workers' k-th batches is positions [k * global_batch, (k + 1) * global_batch): the
    same global batches a single process would form from ``index``.
    """

    def make_dataset(context):
        import tensorflow as tf

        from keras_notes.finetune.data import decode_image

        per_replica = context.get_per_replica_batch_size(global_batch)
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        batches = len(index) // global_batch * local_replicas
        dataset = tf.data.Dataset.from_tensor_slices((
            np.asarray(files.paths)[index], np.asarray(files.labels, np.int32)[index],
            np.asarray(files.needs_pil, bool)[index], np.asarray(files.orientation, np.int32)[index],
            np.asarray(weights, np.float32)))
        # Shard the file names, before decoding: each worker decodes only its own images.
        dataset = dataset.shard(context.num_input_pipelines, context.input_pipeline_id)
        dataset = dataset.map(lambda path, label, pil, turn, weight: (decode_image(path, pil, image_size, turn),
                                                                      label, weight),
                              num_parallel_calls=tf.data.AUTOTUNE)
        # (per_replica, size, size, 3), (per_replica,), (per_replica,); exactly `batches` of them.
        dataset = dataset.batch(per_replica, drop_remainder=True).take(batches)
        if augmentation is not None:
            dataset = dataset.map(lambda images, labels, w: (augmentation(images, training=True), labels, w),
                                  num_parallel_calls=tf.data.AUTOTUNE)
        options = tf.data.Options()
        # The sharding above is by hand; say so, rather than rely on what a strategy does by default.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)

    return make_dataset


def training_batches(strategy, files, epoch, steps, global_batch, image_size, seed, shuffle=True,
                     augmentation=None):
    """An iterator over the ``steps`` distributed batches of ``epoch``: its order, the remainder dropped."""
    index = epoch_order(len(files), seed, epoch, shuffle)[:steps * global_batch]
    make_dataset = dataset_fn(files, index, np.ones(len(index)), global_batch, image_size, augmentation)
    return iter(strategy.distribute_datasets_from_function(make_dataset))


def validation_batches(strategy, files, global_batch, image_size):
    """``(iterator, steps)``: every validation file once, in order, padded with weight-0 copies of file 0."""
    steps = math.ceil(len(files) / global_batch)
    index = np.concatenate([np.arange(len(files)), np.zeros(steps * global_batch - len(files), int)])
    weights = np.arange(len(index)) < len(files)
    make_dataset = dataset_fn(files, index, weights, global_batch, image_size)
    return iter(strategy.distribute_datasets_from_function(make_dataset)), steps
