"""The multi-worker loop's checkpoints: what every epoch saves, and where a restarted group resumes.

``tf.train.CheckpointManager`` saves the model, the optimizer, the epoch and the history
after every epoch, on every worker: the chief into the run folder, every other worker into
its temporary folder (``cluster.write_dir``). At start every worker reads the epoch of its
newest checkpoint, the workers agree on the smallest (a collective), and all restore that
epoch's checkpoint, so a group restarted with the same ``TF_CONFIG`` and arguments resumes
where every worker last got to.
"""

import os

import numpy as np

from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio
from keras_notes.finetune.multiworker_steps import agree

# Inside the write folder, apart from the single-machine run's BackupAndRestore folders:
# ckpt-<epoch>.index / .data-*, numbered by the epochs they complete.
CHECKPOINT_DIR = os.path.join(runio.CHECKPOINT_DIR, "multi-worker")
HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy", "seconds")  # history.csv's columns, as fit's
# Two, not one: workers that crash one epoch apart can still restore the older, common epoch.
KEEP_CHECKPOINTS = 2


def checkpoint_epoch(path):
    """``.../ckpt-7`` -> 7: checkpoints are numbered by the epochs they complete."""
    return int(path.rsplit("-", 1)[1])


class EpochCheckpoints:
    """The epochs done and their history, checkpointed with the model and the optimizer in ``folder``.

    The epoch and the history are plain (not mirrored) variables: each worker keeps its
    own copy, and all hold the same values.
    """

    def __init__(self, folder):
        import tensorflow as tf

        self.directory = os.path.join(folder, CHECKPOINT_DIR)
        os.makedirs(self.directory, exist_ok=True)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
        # (epochs done, len(HISTORY_KEYS)): the first dimension is left open so that a run extended
        # to more epochs than it was started with still restores its history.
        self.history = tf.Variable(np.zeros((0, len(HISTORY_KEYS))), dtype=tf.float64,
                                   shape=tf.TensorShape([None, len(HISTORY_KEYS)]))
        self.manager = None

    def track(self, model, optimizer):
        """Save ``model`` and ``optimizer`` (a new phase's) from now on."""
        import tensorflow as tf

        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=self.epoch, history=self.history)
        self.manager = tf.train.CheckpointManager(checkpoint, self.directory, max_to_keep=KEEP_CHECKPOINTS)

    def agreed_start(self, strategy, total_epochs):
        """The epoch to start from: the newest one every worker has a checkpoint of (0: none)."""
        import tensorflow as tf

        mine = tf.train.latest_checkpoint(self.directory)
        start = agree(strategy, checkpoint_epoch(mine) if mine else 0)
        if start > total_epochs:
            raise KerasNotesError(f"{self.directory} already holds {start} trained epochs, more than the "
                                  f"{total_epochs} asked for; ask for at least {start} or use a new output folder")
        return start

    def restore(self, epoch):
        """Restore the tracked objects from the checkpoint of ``epoch``; -> its path."""
        import tensorflow as tf

        path = os.path.join(self.directory, f"ckpt-{epoch}")
        if not tf.io.gfile.exists(path + ".index"):
            raise KerasNotesError(f"the workers' checkpoints disagree: this worker has no checkpoint for epoch "
                                  f"{epoch} in {self.directory}; remove the run's checkpoints and start again")
        self.manager.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, epoch, row):
        """Record ``row`` (the HISTORY_KEYS values of ``epoch``, counted from 0) and checkpoint it."""
        self.history.assign(np.vstack([self.history.numpy(), [row]]))
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)

    def rows(self):
        """The history as one dict per epoch: ``"epoch"`` and the HISTORY_KEYS."""
        return [{"epoch": epoch, **dict(zip(HISTORY_KEYS, map(float, values)))}
                for epoch, values in enumerate(self.history.numpy())]
