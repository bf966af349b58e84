"""``finetune(config)``: the one entry to a fine-tuning run, on one machine or on a cluster.

``--strategy multi-worker`` runs take ``multiworker_finetune.finetune_multi_worker``'s
custom loop, because Keras 3's ``fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585, tensorflow/tensorflow#72388); every other run takes
``train.finetune_one_machine`` on ``fit``. The choice is made here, once, so that
neither training path imports the other.
"""


def finetune(config):
    """Run ``config`` (a ``FinetuneConfig``) and return a ``results.FinetuneResult``.

    The run folder's lock (``lock.py``) is held from the folder's first check to the end.
    """
    from keras_notes.finetune import lock

    with lock.released_after():
        return _finetune(config)


def _finetune(config):
    if config.strategy == "multi-worker":
        # Imported only here: the cluster path must create its strategy before any other
        # TensorFlow operation runs, and a single-machine run never needs it.
        from keras_notes.finetune.multiworker_finetune import finetune_multi_worker

        return finetune_multi_worker(config)
    from keras_notes.finetune.train import finetune_one_machine

    return finetune_one_machine(config)
