"""What keeps a training run's saved state good when it is stopped: signals, NaN loss, a kill mid-save.

``TrainingGuard`` is a Keras callback placed *before* the backup callback. It turns
SIGINT and SIGTERM into a clean stop at the next batch boundary, and a NaN or
infinite loss into a stop, both by raising a ``TrainingStopped`` exception out of
``fit``. Raising, rather than setting ``model.stop_training``, matters: after
``stop_training`` Keras still ends the epoch, runs validation and calls
``on_epoch_end``, where ``BackupAndRestore`` would save a half-trained (or NaN)
epoch as if it were complete. Raised before that, the backup on disk stays the last
completed, finite epoch, and ``--resume`` continues from it.

``AtomicBackupAndRestore`` is Keras's ``BackupAndRestore`` with each save written to
temporary names and renamed into place. The stock save overwrites
``latest.weights.h5`` and then ``training_metadata.json`` in place (its
``double_checkpoint`` copy to ``.bkp`` happens inside that save, which this class
replaces, so one pair is kept: 177 MB for VGG16 with Adam). A kill while the metadata is
written leaves truncated JSON, which raises ``JSONDecodeError`` (not ``OSError``), and
a kill between the two writes pairs new weights with the old epoch number. Renaming
each file whole, weights first, narrows both to a kill between the two renames, which
makes resume repeat one epoch rather than skip one.
"""

import math
import os
import signal
import threading

import keras

from keras_notes.atomic import atomic_path
from keras_notes.errors import KerasNotesError
from keras_notes.finetune import runio

INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingStopped(Exception):
    """Training stopped before its last epoch; ``exit_status`` is what the command line returns."""

    exit_status = 1


class TrainingInterrupted(TrainingStopped):
    """SIGINT or SIGTERM arrived; the last completed epoch is backed up."""

    def __init__(self, message, signum):
        super().__init__(message)
        self.signum = signum
        self.exit_status = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


class TrainingDiverged(TrainingStopped):
    """The loss became NaN or infinite; the last finite epoch is backed up."""


class TrainingGuard(keras.callbacks.Callback):
    """Stop ``fit`` cleanly on SIGINT/SIGTERM or a non-finite loss, before the epoch is backed up.

    ``run_dir`` only goes into the messages (the command that resumes). Signal handlers
    are installed for the duration of ``fit`` and only in the main thread (Python allows
    no other); a second signal while the first is pending stops at once with
    ``KeyboardInterrupt``, for a user who does not want to wait for the batch to end.
    """

    def __init__(self, run_dir=None):
        super().__init__()
        self.run_dir = run_dir
        self.signum = None
        self._previous = {}
        self._epoch = 0

    # -- signals ---------------------------------------------------------------------
    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signum = signum

    def on_train_begin(self, logs=None):
        self.signum = None
        if threading.current_thread() is threading.main_thread():
            for signum in INTERRUPT_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_end(self, logs=None):
        self.restore_handlers()

    def restore_handlers(self):
        """Put back the handlers that were in place before ``fit`` (also after an exception)."""
        for signum, handler in self._previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _resume_hint(self):
        return "resume with --resume" + (f" --output {self.run_dir}" if self.run_dir else "")

    def _check_signal(self):
        if self.signum is None:
            return
        self.restore_handlers()
        name = signal.Signals(self.signum).name
        saved = f"epochs up to {self._epoch} are saved" if self._epoch else "no epoch had completed"
        raise TrainingInterrupted(
            f"{name}: interrupted in epoch {self._epoch + 1}; {saved}; {self._resume_hint()}", self.signum)

    # -- NaN -------------------------------------------------------------------------
    def _check_finite(self, logs, where):
        for key in ("loss", "val_loss"):
            value = (logs or {}).get(key)
            if value is not None and not math.isfinite(float(value)):
                self.restore_handlers()
                lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                kept = (f"the checkpoint of epoch {self._epoch} is kept" if self._epoch else
                        "no epoch had completed, so there is no checkpoint")
                raise TrainingDiverged(
                    f"{key} became {float(value)} in epoch {self._epoch + 1}{where}; training stopped and "
                    f"{kept}; try a lower learning rate (received lr={lr:g})")

    # -- callback hooks ----------------------------------------------------------------
    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._check_signal()

    def on_train_batch_end(self, batch, logs=None):
        self._check_finite(logs, f", batch {batch + 1}")
        self._check_signal()

    def on_test_batch_end(self, batch, logs=None):
        self._check_signal()

    def on_epoch_end(self, epoch, logs=None):
        # Runs before BackupAndRestore's on_epoch_end: an update in the last batch can
        # make the weights NaN while that batch's loss (computed before it) is finite;
        # validation, computed after it, shows it.
        self._check_finite(logs, "")
        self._check_signal()


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose weights and metadata are each written whole, then renamed.

    A backup that cannot be read (truncated, corrupt, or from another model) stops ``fit``
    with one ``KerasNotesError`` naming the backup folder, instead of h5py's or Keras's traceback.
    """

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
        except KerasNotesError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as error:
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise KerasNotesError(f"cannot resume from the backup in {self.backup_dir!r}: it is truncated, "
                                  f"corrupt or from another model ({reason}); delete that folder to "
                                  f"restart this phase") from None

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        # Weights first: a kill between the two renames pairs new weights with the
        # previous epoch number, so resume repeats one epoch rather than skips one.
        with atomic_path(self._weights_path) as weights:
            self.model.save_weights(weights, overwrite=True)
        runio.write_json(self._training_metadata_path, {"epoch": self._current_epoch, "batch": self._last_batch_seen})
